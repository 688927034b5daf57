// The standard benchmark (workloads.ts): medians of a full training step, a forward pass, and
// KV-cached generation of 64 tokens for 8 sequences after a 64-token prompt.
import { kernelThreadCount } from "../engine/worker-shim.ts";
import { relaxedSimdAvailable } from "../engine/wasm-features.ts";
import { standardWorkloads } from "./workloads.ts";

export interface BenchResult {
  train_step_ms: number;
  forward_ms: number;
  generate_64_ms: number;
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

export async function runStandardBenchmark(options: { runs?: number; warmup?: number; log?: (msg: string) => void } = {}): Promise<BenchResult> {
  const runs = options.runs ?? 10;
  const warmup = options.warmup ?? 2;
  const log = options.log ?? (() => {});
  const w = await standardWorkloads();
  log("train step");
  const trainMs = await medianMs(runs, warmup, w.run.train);
  log("forward");
  const forwardMs = await medianMs(runs, warmup, w.run.forward);
  log("generate");
  const generateMs = await medianMs(Math.max(3, Math.floor(runs / 2)), 1, w.run.generate);
  w.dispose();
  return {
    train_step_ms: round(trainMs),
    forward_ms: round(forwardMs),
    generate_64_ms: round(generateMs),
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
