// The one place that starts jax-js and re-exports it. Everything else imports the tensor library
// from here, so the device choice and Node-specific set-up live in a single file.
// Must come before jax-js: see worker-shim.ts and wasm-features.ts.
// The installed jax-js is patched on `npm ci` (patches/@jax-js+jax+0.1.25.patch, applied by
// patch-package): a matmul micro-tile that fits V8's registers, faster batched matmuls, SIMD
// exp/reciprocal, no re-hashing of a kernel per dispatch, buffers that hold memory only from first
// write to last use, an allocator that reuses it, scatter under jit, and `wasmMemoryStats`
// (docs/jax-js-notes.md). jax-patches.test.ts and jax-memory.test.ts check that it is applied and
// that it changes no result.
import "./worker-shim.ts";
import "./wasm-features.ts";
import * as jax from "@jax-js/jax";

export const { numpy: np, nn, lax, tree, random, jit, valueAndGrad, vjp, grad, profiler, wasmMemoryStats } = jax;
export type Array = jax.Array;
export type DType = jax.DType;

export type DeviceName = "wasm" | "cpu" | "webgpu";

let started: Promise<DeviceName> | null = null;

export interface EngineOptions {
  /** Tensor backend; `wasm` (default) runs compiled WebAssembly kernels on worker threads. */
  device?: DeviceName;
}

/** Starts the engine once; later calls return the device already chosen. */
export function initEngine(options: EngineOptions = {}): Promise<DeviceName> {
  started ??= start(options);
  return started;
}

async function start(options: EngineOptions): Promise<DeviceName> {
  const device = options.device ?? ((process.env.RLHF_DEVICE as DeviceName | undefined) ?? "wasm");
  if (device === "webgpu") await installWebGpu();
  const available = await jax.init(device);
  if (!available.includes(device)) {
    throw new Error(`jax-js device "${device}" is not available here (available: ${available.join(", ") || "none"})`);
  }
  jax.defaultDevice(device);
  return device;
}

/** WebGPU in Node goes through Dawn (the `webgpu` npm package), installed only by those who want it. */
async function installWebGpu(): Promise<void> {
  const g = globalThis as Record<string, any>;
  if (g.navigator?.gpu) return;
  let dawn: { create: (flags: string[]) => unknown; globals: Record<string, unknown> };
  try {
    dawn = (await import("webgpu" as string)) as typeof dawn;
  } catch {
    throw new Error('device "webgpu" needs the optional package `webgpu` (npm install webgpu)');
  }
  Object.assign(globalThis, dawn.globals);
  g.navigator = { ...(g.navigator ?? {}), gpu: dawn.create([]), userAgent: "node" };
}
