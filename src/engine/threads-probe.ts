// Computes a few kernels and prints their results as JSON, for kernel-threads.test.ts to run in child
// processes with different thread settings (the worker shim is set up at import, from the environment).
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
const sorted = np.sort(np.array(values(40, 3))); // a CPU routine: goes to a real worker thread
console.log(
  JSON.stringify({
    threads: kernelThreadCount(),
    product: Array.from(await toHost(out.product)),
    small: Array.from(await toHost(out.small)),
    sums: Array.from(await toHost(out.sums)),
    sorted: Array.from(await toHost(sorted)),
  }),
);
