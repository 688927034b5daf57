// The reference model's log-probs of a DPO run's pairs, kept in the output directory so that
// `rlhf dpo --resume` reads them back instead of running the reference over every pair again.
// The file is used only when its fingerprint matches: the same reference weights (by path, size
// and modification time), the same token ids, the same summing or averaging and length cut.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";
import type { DpoPair } from "./dpo.ts";
import type { DpoExample } from "../data/dpo-data.ts";

export const REF_CACHE_FILE = "dpo_ref_logps.json";

interface RefCacheFile {
  fingerprint: string;
  reference: string;
  /** [chosen, rejected] per pair, in the order of the examples. */
  train: [number, number][];
  eval: [number, number][];
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

export function refCacheFingerprint(
  referencePath: string,
  settings: Record<string, unknown>,
  data: { train: readonly DpoExample[]; eval: readonly DpoExample[] },
): string {
  const hash = createHash("sha256");
  hash.update(referenceIdentity(referencePath)).update(JSON.stringify(settings));
  for (const split of [data.train, data.eval]) {
    hash.update(`split:${split.length}`);
    for (const e of split) hash.update(`${e.prompt.join(",")}|${e.chosen.join(",")}|${e.rejected.join(",")};`);
  }
  return hash.digest("hex");
}

/** The cached pairs when `dir` holds a cache with this fingerprint, else null. */
export async function readRefCache(
  dir: string,
  fingerprint: string,
  data: { train: readonly DpoExample[]; eval: readonly DpoExample[] },
): Promise<{ train: DpoPair[]; eval: DpoPair[] } | null> {
  const path = join(dir, REF_CACHE_FILE);
  if (!existsSync(path)) return null;
  let cache: RefCacheFile;
  try {
    cache = JSON.parse(await readFile(path, "utf8")) as RefCacheFile;
  } catch {
    return null; // unreadable: computed again and rewritten
  }
  if (cache.fingerprint !== fingerprint || cache.train?.length !== data.train.length || cache.eval?.length !== data.eval.length) return null;
  const join2 = (examples: readonly DpoExample[], logps: [number, number][]) => examples.map((e, i) => ({ ...e, refChosen: logps[i]![0], refRejected: logps[i]![1] }));
  return { train: join2(data.train, cache.train), eval: join2(data.eval, cache.eval) };
}

export async function writeRefCache(dir: string, fingerprint: string, reference: string, pairs: { train: DpoPair[]; eval: DpoPair[] }): Promise<void> {
  const logps = (split: DpoPair[]) => split.map((p): [number, number] => [p.refChosen, p.refRejected]);
  const cache: RefCacheFile = { fingerprint, reference, train: logps(pairs.train), eval: logps(pairs.eval) };
  await writeFileAtomic(join(dir, REF_CACHE_FILE), JSON.stringify(cache) + "\n");
}
