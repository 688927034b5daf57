// Shared by the io tests: temp directories and the location of the shared (read-only) test data.
import { mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after } from "node:test";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Path of a file under the shared data folder (`../shared/data` from the repo root); fails clearly if absent. */
export function sharedData(relative: string): string {
  const path = resolve(repoRoot, "../shared/data", relative);
  if (!existsSync(path)) throw new Error(`test data missing: ${path} (expected the shared data folder beside the repository)`);
  return path;
}

/** A fresh temp directory, removed when the test file finishes. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rlhf-io-"));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
