// For tests that drive the real `rlhf` command line in a child process.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const RLHF_BIN = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));

export function runRlhf(args: string[]) {
  return spawnSync(process.execPath, [RLHF_BIN, ...args], { encoding: "utf8" });
}

/** Runs the command and asserts that it exits 0 (the failure shows its stderr). */
export function runRlhfOk(args: string[]) {
  const r = runRlhf(args);
  assert.equal(r.status, 0, `rlhf ${args.join(" ")}\n${r.stderr}`);
  return r;
}
