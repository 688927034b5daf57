// The standard benchmark (workloads.ts): medians of a full training step, a forward pass, and
// KV-cached generation of 64 tokens for 8 sequences after a 64-token prompt.
import { kernelThreadCount } from "../engine/worker-shim.ts";
import { relaxedSimdAvailable } from "../engine/wasm-features.ts";
import type { RolloutDtype, RolloutEngineName } from "../generation/rollout-engine.ts";
import { standardWorkloads } from "./workloads.ts";

export interface BenchResult {
  /** null with the llama.cpp engine, which times generation alone. */
  train_step_ms: number | null;
  forward_ms: number | null;
  generate_64_ms: number;
  /** Where generation ran (`--rollout_engine`). */
  generate_engine: RolloutEngineName;
  /** The weights generation ran with (`--rollout_dtype`; jax-js: f32). */
  generate_dtype: RolloutDtype;
  peak_rss_mb: number;
  params: number;
  runs: number;
  threads: number;
  /** Whether the kernels had fused multiply-adds (src/engine/wasm-features.ts). */
  relaxed_simd: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median wall time of `runs` repetitions after `warmup` untimed ones (the first compiles). */
export async function medianMs(runs: number, warmup: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * The three workloads on jax-js, or with `rolloutEngine: "llama.cpp"` generation alone on llama.cpp
 * (the engine changes nothing else).
 */
export async function runStandardBenchmark(options: { runs?: number; warmup?: number; rolloutEngine?: RolloutEngineName; rolloutDtype?: RolloutDtype; log?: (msg: string) => void } = {}): Promise<BenchResult> {
  const runs = options.runs ?? 10;
  const warmup = options.warmup ?? 2;
  const log = options.log ?? (() => {});
  const engine = options.rolloutEngine ?? "jax-js";
  const dtype = options.rolloutDtype ?? "f32";
  const w = await standardWorkloads({ rolloutEngine: engine, rolloutDtype: dtype });
  let trainMs: number | null = null;
  let forwardMs: number | null = null;
  if (engine === "jax-js") {
    log("train step");
    trainMs = await medianMs(runs, warmup, w.run.train);
    log("forward");
    forwardMs = await medianMs(runs, warmup, w.run.forward);
  }
  log(`generate (${engine})`);
  const generateMs = await medianMs(Math.max(3, Math.floor(runs / 2)), 1, w.run.generate);
  await w.dispose();
  return {
    train_step_ms: trainMs === null ? null : round(trainMs),
    forward_ms: forwardMs === null ? null : round(forwardMs),
    generate_64_ms: round(generateMs),
    generate_engine: engine,
    generate_dtype: dtype,
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024),
    params: w.params,
    runs,
    threads: kernelThreadCount(),
    relaxed_simd: relaxedSimdAvailable(),
  };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
