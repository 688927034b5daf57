// Computes a few kernels and prints their results as JSON, for kernel-threads.test.ts to run in child
// processes with different thread settings (the worker shim is set up at import, from the environment).
import { createHash } from "node:crypto";
import { initEngine, np, type Array } from "./runtime.ts";
import { compile, toHost } from "./arrays.ts";
import { kernelThreadCount } from "./worker-shim.ts";

await initEngine();
const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
const a = np.array(values(96 * 200, 1)).reshape([96, 200]);
const b = np.array(values(200 * 130, 2)).reshape([200, 130]);
// A matmul with an epilogue (many chunks), a small elementwise kernel (one chunk), a reduction.
const f = compile((x: Array, y: Array) => ({
  product: np.tanh(np.matmul(x.ref, y.ref)).mul(3),
  small: x.ref.slice([0, 1], [0, 8]).mul(2),
  sums: np.sum(y, 0),
}));
const out = f(a, b);
// Kernels large enough to be re-cut into more pieces than jax-js's chunks (kernel-threads.ts):
// an elementwise kernel and a matmul with many row tiles. Compared by a digest of their bits.
const big = compile((x: Array, tall: Array, w: Array) => ({ wide: np.tanh(x).mul(2), tall: np.matmul(tall, w) }));
const large = big(
  np.array(values(1 << 18, 4)),
  np.array(values(2048 * 32, 5)).reshape([2048, 32]),
  np.array(values(32 * 64, 6)).reshape([32, 64]),
);
const digest = async (x: Array) => createHash("sha256").update(Buffer.from((await toHost(x)).buffer)).digest("hex");
const sorted = np.sort(np.array(values(40, 3))); // a CPU routine: goes to a real worker thread
console.log(
  JSON.stringify({
    threads: kernelThreadCount(),
    product: Array.from(await toHost(out.product)),
    small: Array.from(await toHost(out.small)),
    sums: Array.from(await toHost(out.sums)),
    sorted: Array.from(await toHost(sorted)),
    wide: await digest(large.wide),
    tall: await digest(large.tall),
  }),
);
