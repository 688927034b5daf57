// What patches/@jax-js+jax+0.1.25.patch changes in jax-js (applied by patch-package on install):
// a 2x4 matmul micro-tile reading its right-hand vectors through one pointer, batched matmuls that
// share right-hand vectors across a micro-tile's rows, exp / reciprocal on four lanes, and a
// kernel's compiled program found once per Kernel object and compiled once, the outputs of a jit
// call sharing one set of its pending executes (tested here); memory
// given to buffers from first write to last use, an allocator that reuses freed memory, routines
// (scatter) fed from expressions under jit, a row-wise scatter-add, and `wasmMemoryStats`
// (tested in jax-memory.test.ts). None of it may change a result: the model tests against PyTorch
// and these check that.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { initEngine, np, nn, wasmMemoryStats, type Array } from "./runtime.ts";
import { compile, fromHost, toHost } from "./arrays.ts";
import { HostRng } from "./random.ts";

await initEngine();

/** n values uniform in [-1, 1). */
function uniform(seed: number, n: number): Float32Array {
  const rng = new HostRng(seed);
  return Float32Array.from({ length: n }, () => 2 * rng.next() - 1);
}

test("the jax-js patch is applied to both of its bundles", () => {
  const dist = dirname(createRequire(import.meta.url).resolve("@jax-js/jax"));
  for (const bundle of ["backend-CnjgxpXq.js", "backend-TLHPgbCA.cjs"]) {
    const source = readFileSync(join(dist, bundle), "utf8");
    assert.match(source, /function wasm_exp_simd\(cg\)/, `${bundle}: run \`npm ci\` (its postinstall runs patch-package)`);
    assert.match(source, /gidxBlock/, bundle);
    assert.match(source, /programByKernel/, bundle);
    assert.match(source, /const TILED_SIMD_MICRO_ROWS = 2;/, bundle);
    assert.match(source, /const UNPLACED = -1;/, bundle);
    assert.match(source, /#releaseLarge\(ptr, size, busy\)/, bundle);
    assert.match(source, /rows of updates into rows of the output/, bundle);
  }
  for (const bundle of ["index.js", "index.cjs"]) {
    const source = readFileSync(join(dist, bundle), "utf8");
    assert.match(source, /a routine \(scatter, sort, \.\.\.\) reads whole buffers/, bundle);
    assert.match(source, /function wasmMemoryStats\(/, bundle);
    assert.match(source, /static #pendingOfAll\(arrays\)/, bundle);
  }
});

/** [b, m, k] @ [b, k, n] in float64. */
function referenceBatchedMatmul(a: Float32Array, w: Float32Array, [b, m, k, n]: number[]): Float64Array {
  const out = new Float64Array(b! * m! * n!);
  for (let s = 0; s < b!; s++)
    for (let i = 0; i < m!; i++)
      for (let j = 0; j < n!; j++) {
        let sum = 0;
        for (let r = 0; r < k!; r++) sum += a[(s * m! + i) * k! + r]! * w[(s * k! + r) * n! + j]!;
        out[(s * m! + i) * n! + j] = sum;
      }
  return out;
}

test("batched matmuls match a float64 reference, whether or not a batch spans whole micro-tiles", async () => {
  // Attention's shapes, shapes whose batch is 1, 2 or 3 rows of outputs (not a whole micro-tile),
  // single-row products as in a decode step, and sizes that are not multiples of 4.
  const shapes = [[8, 128, 64, 128], [8, 128, 128, 64], [4, 16, 64, 8], [6, 1, 64, 32], [5, 2, 16, 16], [3, 3, 8, 12], [7, 5, 7, 20], [2, 12, 20, 4], [3, 6, 5, 3]];
  const mm = compile((a: Array, w: Array) => np.matmul(a, w));
  for (const [seed, shape] of shapes.entries()) {
    const [b, m, k, n] = shape as [number, number, number, number];
    const a = uniform(2 * seed + 1, b * m * k);
    const w = uniform(2 * seed + 2, b * k * n);
    const got = await toHost(mm(fromHost(a, [b, m, k]), fromHost(w, [b, k, n])));
    const want = referenceBatchedMatmul(a, w, shape);
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5 * (1 + Math.abs(want[i]!)), `${shape.join("x")} at ${i}: ${got[i]} vs ${want[i]}`);
    }
  }
  mm.dispose();
});

test("exp, sigmoid, softmax and reciprocal give the same bits on four lanes as on jax-js's scalar path", async () => {
  const special = [-1e9, -Infinity, Infinity, NaN, -104, -87.5, -87.3, -0.5, 0, -0, 1e-30, 0.5, 1, 20, 88, 88.7, 89, 3.4e38, -3.4e38];
  const rows = 64;
  const values = Float32Array.from([...special, ...Array.from(uniform(7, 3 * rows - special.length), (u) => u * 100)]);
  const ops: [string, (x: Array) => Array][] = [
    ["exp", (x) => np.exp(x)],
    ["sigmoid", (x) => nn.sigmoid(x)],
    ["reciprocal", (x) => np.reciprocal(x)],
    ["softmax", (x) => nn.softmax(x, -1)],
  ];
  for (const [name, op] of ops) {
    const fn = compile(op);
    const wide = await toHost(fn(fromHost(values, [rows, 3])));
    for (let r = 0; r < rows; r++) {
      // A kernel with fewer than four outputs is compiled without SIMD.
      const narrow = await toHost(fn(fromHost(values.slice(3 * r, 3 * r + 3), [1, 3])));
      assert.deepEqual(Array.from(wide.subarray(3 * r, 3 * r + 3)), Array.from(narrow), `${name}, row ${r}: ${values.subarray(3 * r, 3 * r + 3).join(", ")}`);
    }
    fn.dispose();
  }
  const exp = compile((x: Array) => np.exp(x));
  const got = await toHost(exp(fromHost(values, [values.length])));
  for (let i = 0; i < values.length; i++) {
    const want = Math.exp(values[i]!);
    // jax-js reduces x by one float32 ln 2, so its relative error grows with |x| (~3e-6 at x = -65).
    const tolerance = 1e-7 * (2 + Math.abs(values[i]!));
    if (want > 1e-37 && want < 3e38) assert.ok(Math.abs(got[i]! - want) <= tolerance * want, `exp(${values[i]}) = ${got[i]}, want ${want}`);
  }
  exp.dispose();
});

test("a new kernel prepared for several executions at once is compiled once", async () => {
  const compileWasm = WebAssembly.compile;
  let compiles = 0;
  WebAssembly.compile = (bytes) => ((compiles += 1), compileWasm(bytes));
  try {
    // Four outputs computed by one kernel (same expression, same size) that no earlier test compiled,
    // read together: jax-js prepares the four executions concurrently.
    const fn = compile((a: Array, b: Array, c: Array, d: Array) => [a, b, c, d].map((x) => x.ref.mul(0.375).add(2.5).mul(x)));
    const inputs = [1, 2, 3, 4].map((seed) => fromHost(uniform(seed, 40), [40]));
    const outputs = fn(...(inputs as [Array, Array, Array, Array]));
    const values = await Promise.all(outputs.map((o) => toHost(o)));
    assert.equal(values.length, 4);
    assert.equal(compiles, 1);
    fn.dispose();
  } finally {
    WebAssembly.compile = compileWasm;
  }
});

test("the outputs of one jit call share their pending executes: freed and read in any order, no buffer outlives them; a strided view of one, realized, keeps its own", async () => {
  // Three outputs of one program, none computed yet (jax-js runs a program's kernels when a value
  // is read); one freed unread, the others read.
  const fn = compile((a: Array, b: Array) => [a.ref.add(b.ref), a.ref.mul(b), a.mul(2)]);
  const [a, b] = [fromHost(uniform(5, 12), [3, 4]), fromHost(uniform(6, 12), [3, 4])];
  const [av, bv] = [await toHost(a.ref), await toHost(b.ref)];
  const live = () => wasmMemoryStats()!.liveBytes;
  await Promise.all(fn(a.ref, b.ref).map((x) => toHost(x))); // compiled before the count
  const before = live();
  const [sum, product, doubled] = fn(a.ref, b.ref);
  doubled!.dispose();
  const [p, s] = [await toHost(product!), await toHost(sum!)];
  assert.equal(live(), before, `a buffer outlived every array that used it: ${live() - before} bytes`);
  for (let k = 0; k < 12; k++) {
    assert.equal(s[k], Math.fround(av[k]! + bv[k]!));
    assert.equal(p[k], Math.fround(av[k]! * bv[k]!));
  }
  // Transposed views of two outputs, each with its own copy of the shared set, realized by kernels
  // of their own when a jit call reads them, their outputs freed before the result is read.
  // (Upstream, each realized view passed to a jit call leaves its 64-byte copy behind, with or
  // without this patch: docs/jax-js-notes.md.)
  const [sum2, product2, doubled2] = fn(a.ref, b.ref);
  sum2!.dispose();
  const twice = compile((x: Array, y: Array) => x.add(y));
  const viewed = twice(product2!.ref.transpose(), doubled2!.ref.transpose()); // [4, 3]
  product2!.dispose();
  doubled2!.dispose();
  const v = await toHost(viewed);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 4; j++) {
      const k = i * 4 + j;
      assert.equal(v[j * 3 + i], Math.fround(p[k]! + Math.fround(2 * av[k]!)));
    }
  a.dispose();
  b.dispose();
  fn.dispose();
  twice.dispose();
});
