// The memory side of patches/@jax-js+jax+0.1.25.patch: buffers take memory from their first write
// to their last use (not for a whole jitted program), freed memory serves buffers of other sizes,
// a gather's gradient (a scatter-add) compiles under jit whatever shape its cotangent arrives in,
// and `wasmMemoryStats` reports the heap.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { initEngine, np, valueAndGrad, wasmMemoryStats, type Array } from "./runtime.ts";
import { compile, fromHost, intsFromHost, release, toHost } from "./arrays.ts";
import { HostRng } from "./random.ts";

await initEngine();

const MiB = 2 ** 20;

function stats() {
  const s = wasmMemoryStats();
  assert.ok(s, "wasmMemoryStats: the wasm backend is not started");
  return s;
}

test("a jitted chain of twelve stored intermediates holds a few of them at a time, not all twelve", async () => {
  const n = MiB; // 4 MiB per buffer
  const chain = compile((x: Array) => {
    let y = x;
    // Each value feeds two consumers, so jax-js stores every one of them.
    for (let i = 0; i < 12; i++) y = np.exp(y.ref.mul(-1)).add(y.mul(0.5));
    return np.sum(y);
  });
  const x = fromHost(new Float32Array(n).fill(0.25), [n]);
  await toHost(chain(x)); // compile first: the kernels' own memory is not what is measured
  stats();
  wasmMemoryStats({ reset: true });
  const before = stats().liveBytes;
  const total = await toHost(chain(x));
  const peak = stats().peakLiveBytes - before;
  assert.ok(Number.isFinite(total[0]!));
  // Before the patch every buffer of the program was allocated before its first kernel ran: 12 × 4 MiB.
  assert.ok(peak <= 4 * 4 * MiB, `peak ${(peak / MiB).toFixed(1)} MiB for a chain of 4 MiB buffers`);
  release(x);
  chain.dispose();
});

test("memory freed by a large buffer serves smaller buffers of other sizes", async () => {
  const big = fromHost(new Float32Array((3 * MiB) / 4).fill(1), [(3 * MiB) / 4]); // 3 MiB
  await toHost(np.sum(big.ref));
  const heapWithBig = stats().heapBytes;
  big.dispose();
  const two = fromHost(new Float32Array((2 * MiB) / 4).fill(2), [(2 * MiB) / 4]);
  const one = fromHost(new Float32Array(MiB / 4).fill(3), [MiB / 4]);
  // Upstream kept one free list per exact size: both would have grown the heap by 3 MiB.
  assert.equal(stats().heapBytes, heapWithBig, "the heap grew although 3 MiB were free");
  assert.equal((await toHost(np.sum(two)))[0], (2 * MiB) / 2);
  assert.equal((await toHost(np.sum(one)))[0], (3 * MiB) / 4);
});

test("an embedding's gradient under jit is the scatter-add of its rows' cotangents, shaped or not", async () => {
  const [v, d] = [50_257, 40]; // an 8 MB table: its gradient is a new buffer that grows the heap
  const rng = new HostRng(3);
  const table = Float32Array.from({ length: v * d }, () => rng.normal());
  const w = Float32Array.from({ length: d * d }, () => rng.normal());
  const ids = [7, 50_256, 7, 0, 12, 7]; // repeated rows must add up
  // Through a matmul and a reshape, as in a model: the cotangent reaches the gather as a view,
  // which jax-js's jit refused to hand to its scatter routine ("input is not imm").
  const lossAndGrad = compile((t: Array, m: Array, i: Array) =>
    valueAndGrad((table: Array) => np.sum(np.square(np.matmul(np.take(table, i, 0), m).reshape([6, d]))))(t),
  );
  const [, grad] = lossAndGrad(fromHost(table, [v, d]), fromHost(w, [d, d]), intsFromHost(ids, [2, 3])) as [Array, Array];
  const got = await toHost(grad);
  // d/d(row) of Σ (row·W)² = 2 (row·W) Wᵀ, summed over each occurrence of the row.
  const want = new Float64Array(v * d);
  for (const id of ids) {
    const y = Array.from({ length: d }, (_, j) => table.subarray(id * d, id * d + d).reduce((s, x, k) => s + x * w[k * d + j]!, 0));
    for (let k = 0; k < d; k++) want[id * d + k]! += 2 * y.reduce((s, yj, j) => s + yj * w[k * d + j]!, 0);
  }
  for (const id of [...new Set(ids), 1, 50_000]) {
    for (let k = 0; k < d; k++) {
      const [g, e] = [got[id * d + k]!, want[id * d + k]!];
      assert.ok(Math.abs(g - e) <= 1e-4 * (1 + Math.abs(e)), `row ${id}[${k}]: ${g} vs ${e}`);
    }
  }
  assert.equal(got.reduce((n, g) => n + (g !== 0 ? 1 : 0), 0), 4 * d, "only the four looked-up rows have gradient");
  lossAndGrad.dispose();
});

test("the same with every dispatch synchronous (RLHF_THREADS=1), where growing the heap replaces its buffer", { skip: process.env.RLHF_THREADS === "1" }, () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", fileURLToPath(import.meta.url)], {
    encoding: "utf8",
    // Without NODE_TEST_CONTEXT the child runs as a test run of its own, not as a subtest stream.
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, RLHF_THREADS: "1" },
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ℹ pass 3\n/, r.stdout);
});
