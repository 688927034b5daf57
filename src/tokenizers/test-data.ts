// Where the tokenizer tests find the shared, read-only data (never copied into the repo).
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** A file under ../shared/data (from the repo root); throws a clear message when it is absent. */
export function dataFile(relative: string): string {
  const path = resolve(repoRoot, "../shared/data", relative);
  if (!existsSync(path)) {
    throw new Error(`test data missing: ${path} (the tokenizer tests read ../shared/data from the repo root; see its MANIFEST.md)`);
  }
  return path;
}

/** A file committed under test/fixtures (reference outputs produced by scripts/reference). */
export function fixtureFile(relative: string): string {
  const path = resolve(repoRoot, "test/fixtures", relative);
  if (!existsSync(path)) throw new Error(`test fixture missing: ${path}`);
  return path;
}
