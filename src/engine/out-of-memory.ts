// Recognising the engine running out of memory, without loading the engine (the CLI's error
// printer imports this, and `rlhf feedback` must not pay for jax-js).

/** jax-js's heap is one 32-bit wasm memory; running past it throws a RangeError from its allocator or from Memory.grow. */
export function isEngineOutOfMemory(err: unknown): boolean {
  return err instanceof RangeError && /memory32 limit|Out of memory|WebAssembly\.Memory/i.test(err.message);
}
