// The reference model's log-probs of a preference run's examples (DPO's pairs, KTO's completions),
// kept in the output directory as DIR/<trainer>_ref_logps.json so that `--resume` reads them back
// instead of running the reference over every example again. The file is used only when its
// fingerprint matches: the same reference weights (by path, size and modification time), the same
// token ids, the same summing or averaging and length cut.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";
import type { PreferenceLayout } from "./preference.ts";

export type Splits<T> = { train: T[]; eval: T[] };

/** The cache's file name for a trainer kind: dpo_ref_logps.json, kto_ref_logps.json. */
export function refCacheFile(kind: string): string {
  return `${kind}_ref_logps.json`;
}

interface RefCacheFile {
  fingerprint: string;
  reference: string;
  /** The log-probs of each example's completions (the layout's order), in the order of the examples. */
  train: number[][];
  eval: number[][];
}

/** Path, size and modification time of the reference's file, or of every file in its directory. */
function referenceIdentity(path: string): string {
  const full = resolve(path);
  const st = statSync(full);
  if (!st.isDirectory()) return `${full}:${st.size}:${st.mtimeMs}`;
  const files = readdirSync(full)
    .sort()
    .map((name) => {
      const s = statSync(join(full, name));
      return s.isFile() ? `${name}:${s.size}:${s.mtimeMs}` : "";
    });
  return `${full}/${files.join("|")}`;
}

export function refCacheFingerprint<E extends { prompt: readonly number[] }>(
  referencePath: string,
  settings: Record<string, unknown>,
  layout: Pick<PreferenceLayout<E>, "completions">,
  data: Splits<E>,
): string {
  const hash = createHash("sha256");
  hash.update(referenceIdentity(referencePath)).update(JSON.stringify(settings));
  for (const split of [data.train, data.eval]) {
    hash.update(`split:${split.length}`);
    for (const e of split) hash.update(`${[e.prompt, ...layout.completions(e)].map((ids) => ids.join(",")).join("|")};`);
  }
  return hash.digest("hex");
}

/** The cached log-probs when `path` holds a cache with this fingerprint and these split sizes, else null. */
export async function readRefCache(path: string, fingerprint: string, sizes: { train: number; eval: number }): Promise<Splits<number[]> | null> {
  if (!existsSync(path)) return null;
  let cache: RefCacheFile;
  try {
    cache = JSON.parse(await readFile(path, "utf8")) as RefCacheFile;
  } catch {
    return null; // unreadable: computed again and rewritten
  }
  if (cache.fingerprint !== fingerprint || cache.train?.length !== sizes.train || cache.eval?.length !== sizes.eval) return null;
  return { train: cache.train, eval: cache.eval };
}

export async function writeRefCache(path: string, fingerprint: string, reference: string, logps: Splits<number[]>): Promise<void> {
  const cache: RefCacheFile = { fingerprint, reference, train: logps.train, eval: logps.eval };
  await writeFileAtomic(path, JSON.stringify(cache) + "\n");
}
