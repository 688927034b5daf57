// WebAssembly features jax-js uses when the runtime has them, switched on before its first kernel.
//
// Relaxed SIMD gives jax-js's matmul kernels a fused multiply-add (`f32x4.relaxed_madd`) where they
// otherwise issue a multiply and an add. Node 20's V8 (11.3) has it behind a flag, Node 22 on by
// default. Measured on the standard benchmark's matmul shapes (one thread): 12–14 → 21–23 GFLOP/s.
// The fused rounding differs from a separate multiply and add in the last bit, so results differ
// (within the reference tolerances) from a run without it; on one machine they are deterministic.
// RLHF_RELAXED_SIMD=0 keeps the separate multiply and add where the runtime does not turn the
// feature on by itself.
import { setFlagsFromString } from "node:v8";

/** A module whose one function is `f32x4.relaxed_madd` of its three v128 parameters. */
const RELAXED_MADD_PROBE = "0061736d0100000001080160037b7b7b017b030201000a0d010b00200020012002fd85020b";

export function relaxedSimdAvailable(): boolean {
  return WebAssembly.validate(Buffer.from(RELAXED_MADD_PROBE, "hex"));
}

/** Turns relaxed SIMD on unless the runtime already has it or RLHF_RELAXED_SIMD=0. */
function enableRelaxedSimd(): void {
  if (process.env.RLHF_RELAXED_SIMD !== "0" && !relaxedSimdAvailable()) setFlagsFromString("--experimental-wasm-relaxed-simd");
}

// jax-js probes for the feature once, when it compiles its first kernel; runtime.ts imports this
// file before jax-js so the probe sees the flag.
enableRelaxedSimd();
