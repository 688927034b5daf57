// Helpers for the model tests.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { compile, fromHost, intsFromHost, release, toHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";
import { causalLmForward, fullBatch } from "./forward.ts";
import type { LoadedModel } from "./load.ts";
import type { Params } from "./types.ts";

/** The model's logits [1, T, V] (flat) for one unpadded row of ids. */
export async function logitsOf(model: LoadedModel, ids: number[]): Promise<Float32Array> {
  const t = ids.length;
  const f = compile((p: Params, i: Array, q: Array, m: Array) => causalLmForward(model.arch, p, fullBatch(i, q, m)));
  const inputs = [intsFromHost(ids, [1, t]), intsFromHost(ids.map((_, k) => k), [1, t]), fromHost(new Float32Array(t).fill(1), [1, t])] as const;
  const out = await toHost(f(model.params, ...inputs));
  release(inputs);
  f.dispose();
  return out;
}

/** Runs scripts/reference/lora_reference.py (plain LoRA, independent of rlhf-ts) with `args`; returns its stdout. */
export function loraReference(args: string[]): string {
  const script = fileURLToPath(new URL("../../scripts/reference/lora_reference.py", import.meta.url));
  const r = spawnSync("/usr/bin/python3", [script, ...args], { encoding: "utf8", env: { ...process.env, OPENBLAS_NUM_THREADS: "2" } });
  assert.equal(r.status, 0, `${script} ${args.join(" ")} failed (is python3-torch installed? run scripts/setup-test-deps.sh):\n${r.stderr}`);
  return r.stdout;
}

/** ‖a − b‖₂ / ‖b‖₂: how far a result is from a reference's, as one number (the PyTorch comparisons' "1e-4 relative"). */
export function normRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < b.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    ref += b[i]! ** 2;
  }
  return Math.sqrt(diff / ref);
}
