import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, np, type Array } from "../engine/runtime.ts";
import { compile, fromHost, release, toHost } from "../engine/arrays.ts";
import { formatProfile, profileKernels } from "./kernel-profile.ts";
import { runRlhf, runRlhfOk } from "../cli/test-helpers.ts";

test("kernels are grouped by size, reduction and inputs, with calls per repetition", async () => {
  await initEngine();
  const x = fromHost(Float32Array.from({ length: 16 * 32 }, (_, i) => Math.sin(i)), [16, 32]);
  const w = fromHost(Float32Array.from({ length: 32 * 8 }, (_, i) => Math.cos(i)), [32, 8]);
  const f = compile((a: Array, b: Array) => np.tanh(np.matmul(a, b)));
  const profile = await profileKernels(
    async () => {
      for (let i = 0; i < 3; i++) await toHost(f(x, w));
    },
    { repeats: 2, warmup: 1 },
  );
  // The matmul: a 16 x 8 output, each a sum of 32 products of its 2 inputs, 3 calls a repetition
  // (tanh may run in a kernel of its own; rows are sorted by time, so the order is not asserted).
  const matmul = profile.groups.find((g) => g.reduction === "Add:32");
  assert.ok(matmul, JSON.stringify(profile.groups));
  assert.deepEqual([matmul.label, matmul.inputs, matmul.calls], ["Kernel[128]", "2", 3]);
  assert.ok(matmul.ms > 0 && profile.kernelMs >= matmul.ms);
  assert.ok(Math.abs(profile.groups.reduce((n, g) => n + g.ms, 0) - profile.kernelMs) < 1e-9);
  const table = formatProfile(profile);
  assert.match(table, /^wall [\d.]+ ms per repetition, [\d.]+ ms in kernels\n +ms  share  calls  kernel  reduction  inputs\n/);
  assert.match(table, /\n +[\d.]+ +[\d.]+% +3  Kernel\[128\]  Add:32  2(\n|$)/);
  release([x, w]);
  f.dispose();
});

test("rlhf bench --profile runs on one kernel thread and reports where the forward pass spends its time", () => {
  const r = runRlhfOk(["bench", "--profile", "forward", "--runs", "1", "--top", "4", "--json"]);
  const out = JSON.parse(r.stdout) as { workload: string; wallMs: number; kernelMs: number; groups: { reduction: string; ms: number }[] };
  assert.equal(out.workload, "forward");
  assert.equal(out.groups.length, 4);
  // Synchronous dispatch: kernel time is part of the wall time. The costliest kernels are matmuls.
  assert.ok(out.kernelMs > 0 && out.kernelMs <= out.wallMs, `${out.kernelMs} ms of kernels in ${out.wallMs} ms`);
  assert.match(out.groups[0]!.reduction, /^Add:\d+$/);
  const bad = runRlhf(["bench", "--profile", "backward"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--profile: expected one of train, forward, generate, dpo, got "backward"/);
});
