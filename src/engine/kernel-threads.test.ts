import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { recut, type KernelChunk } from "./kernel-threads.ts";

const PROBE = fileURLToPath(new URL("./threads-probe.ts", import.meta.url));

function probe(env: Record<string, string>) {
  const r = spawnSync(process.execPath, ["--import", "tsx", PROBE], { encoding: "utf8", env: { ...process.env, ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { threads: number; product: number[]; small: number[]; sums: number[]; sorted: number[]; wide: string; tall: string };
}

test("kernels split across the main thread and helpers give the single-thread results bit for bit", () => {
  const single = probe({ RLHF_THREADS: "1" });
  assert.equal(single.threads, 1);
  const variants: Record<string, string>[] = [{ RLHF_THREADS: "2" }, { RLHF_THREADS: "3", RLHF_KERNEL_CHUNKS: "16" }];
  for (const settings of variants) {
    const shared = probe(settings);
    assert.equal(shared.threads, Number(settings.RLHF_THREADS));
    assert.deepEqual(shared, { ...single, threads: shared.threads }, JSON.stringify(settings));
  }
  assert.deepEqual(single.sorted, [...single.sorted].sort((x, y) => x - y));
  assert.equal(single.product.length, 96 * 130);
});

test("a large kernel is re-cut into aligned pieces that cover it exactly; small or unaligned ones are left as jax-js cut them", () => {
  const chunksOf = (size: number, n: number, alignment?: number): KernelChunk[] => {
    const per = Math.ceil(size / n / (alignment ?? 16)) * (alignment ?? 16);
    // As jax-js cuts: equal aligned chunks, none empty.
    const chunks = Array.from({ length: n }, (_, i) => ({ kernelHash: "k", module: null as unknown as WebAssembly.Module, ptrs: [8, 16], begin: i * per, end: Math.min((i + 1) * per, size), alignment }));
    return chunks.filter((c) => c.begin < size);
  };
  for (const [size, alignment, pieces] of [[1 << 18, 16, 16], [2048 * 64, 128 * 64, 8], [1 << 20, 128 * 1024, 8], [256 * 1024, 128 * 1024, 2], [8192, 16, 4]] as const) {
    const out = recut(chunksOf(size, 4, alignment));
    assert.equal(out.length, pieces, `${size} / ${alignment}`);
    assert.equal(out[0]!.begin, 0);
    assert.equal(out.at(-1)!.end, size);
    out.forEach((c, i) => {
      assert.equal(c.begin % alignment, 0);
      if (i > 0) assert.equal(c.begin, out[i - 1]!.end);
      assert.deepEqual(c.ptrs, [8, 16]);
    });
  }
  const unaligned = chunksOf(1 << 18, 4);
  assert.equal(recut(unaligned), unaligned);
});
