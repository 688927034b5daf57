import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const PROBE = fileURLToPath(new URL("./threads-probe.ts", import.meta.url));

function probe(env: Record<string, string>) {
  const r = spawnSync(process.execPath, ["--import", "tsx", PROBE], { encoding: "utf8", env: { ...process.env, ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { threads: number; product: number[]; small: number[]; sums: number[]; sorted: number[] };
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
