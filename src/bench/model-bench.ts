// `rlhf bench --config`: the workloads at a real model's shape with random weights (workloads.ts,
// realSizeSpec), each timed, with its tokens per second and the engine memory it needed: the
// forward pass, generation and the SFT step, or with --use_peft the LoRA DPO step alone. Workloads run smallest first and each frees its state before the next; one that does not
// fit the engine's 4 GiB is reported as such and the others still run.
import { wasmMemoryStats } from "../engine/runtime.ts";
import { isEngineOutOfMemory } from "../engine/out-of-memory.ts";
import { kernelThreadCount } from "../engine/worker-shim.ts";
import { relaxedSimdAvailable } from "../engine/wasm-features.ts";
import type { ModelConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import { sftMemoryPlan } from "../train/sft.ts";
import { medianMs } from "./standard.ts";
import { adapterShapes, type LoraConfig } from "../models/lora.ts";
import { benchLoraConfig, dpoStepTokens } from "./dpo-workload.ts";
import type { RolloutDtype, RolloutEngineName } from "../generation/rollout-engine.ts";
import { describeWorkload, modelWorkloads, realSizeSpec, type WorkloadName, type WorkloadSpec } from "./workloads.ts";

/**
 * Metric names shared with scripts/reference/bench_torch.py --config; null where it did not fit
 * (did_not_fit names it) or was not run (the forward pass, generation and SFT step with --use_peft,
 * the LoRA DPO step without).
 */
export interface ModelBenchResult {
  config: string;
  model_type: string;
  params: number;
  forward_ms: number | null;
  forward_tokens_per_s: number | null;
  train_step_ms: number | null;
  train_tokens_per_s: number | null;
  generate_64_ms: number | null;
  generate_tokens_per_s: number | null;
  /** Where generation ran (`--rollout_engine`); with llama.cpp its memory is outside the engine's heap, in peak_rss_mb. */
  generate_engine: RolloutEngineName;
  /** The weights generation ran with (`--rollout_dtype`; jax-js: f32). */
  generate_dtype: RolloutDtype;
  dpo_step_ms: number | null;
  dpo_tokens_per_s: number | null;
  /** Most bytes live in the engine during each workload (weights included), MiB. */
  forward_engine_peak_mb: number | null;
  train_engine_peak_mb: number | null;
  generate_engine_peak_mb: number | null;
  dpo_engine_peak_mb: number | null;
  /** The LoRA DPO step's adapter: its parameter count, rank, alpha and target modules; null when it was not run. */
  lora: { adapter_params: number; r: number; lora_alpha: number; target_modules: LoraConfig["target_modules"] } | null;
  /** The engine heap's high-water mark over the whole run (what the wasm memory had to hold), MiB. */
  engine_heap_mb: number;
  /** What `rlhf sft`'s memory plan estimates for the SFT step (with allocator slack), MiB: to set beside the measured peak; null when it was not run. */
  train_plan_mb: number | null;
  peak_rss_mb: number;
  /** Workloads that ran out of the engine's 4 GiB, with what they were. */
  did_not_fit: Partial<Record<WorkloadName, string>>;
  shapes: Partial<Record<WorkloadName, string>>;
  runs: number;
  warmup: number;
  threads: number;
  relaxed_simd: boolean;
}

/** What runs without --use_peft: training needs the most memory, so it goes last. */
export const FULL_WORKLOADS: WorkloadName[] = ["forward", "generate", "train"];
/** What runs with --use_peft. */
export const PEFT_WORKLOADS: WorkloadName[] = ["dpo"];
/** What runs with --rollout_engine llama.cpp: the engine changes generation alone. */
export const ROLLOUT_WORKLOADS: WorkloadName[] = ["generate"];

export async function runModelBenchmark(
  config: ModelConfig,
  options: { source: string; runs?: number; warmup?: number; spec?: WorkloadSpec; workloads?: WorkloadName[]; rolloutEngine?: RolloutEngineName; rolloutDtype?: RolloutDtype; log?: (msg: string) => void },
): Promise<ModelBenchResult> {
  const spec = options.spec ?? realSizeSpec;
  const runs = options.runs ?? 3;
  const warmup = options.warmup ?? 1;
  const log = options.log ?? (() => {});
  const order = options.workloads ?? FULL_WORKLOADS;
  const engine = options.rolloutEngine ?? "jax-js";
  const dtype = options.rolloutDtype ?? "f32";
  const w = await modelWorkloads(config, spec, { rolloutEngine: engine, rolloutDtype: dtype });
  const tokens: Record<WorkloadName, number> = {
    forward: spec.forward.batch * spec.forward.length,
    train: spec.train.batch * spec.train.length,
    generate: spec.generate.batch * spec.generate.newTokens,
    dpo: dpoStepTokens(spec.dpo),
  };
  const ms: Partial<Record<WorkloadName, number>> = {};
  const peak: Partial<Record<WorkloadName, number>> = {};
  const didNotFit: Partial<Record<WorkloadName, string>> = {};
  for (const name of order) {
    const what = `${describeWorkload(name, spec)} at ${options.source} (${parameterCount(w.params)} parameters)`;
    log(what);
    wasmMemoryStats({ reset: true });
    try {
      ms[name] = await medianMs(runs, warmup, w.run[name]);
      peak[name] = wasmMemoryStats()!.peakLiveBytes;
    } catch (err) {
      if (!isEngineOutOfMemory(err)) throw err;
      didNotFit[name] = `${what} did not fit in the engine's 4 GiB (${(err as Error).message})`;
    }
    await w.release(name);
  }
  const heap = wasmMemoryStats()!.heapBytes;
  await w.dispose();
  const perSecond = (name: WorkloadName) => (ms[name] === undefined ? null : round((1000 * tokens[name]) / ms[name]!));
  const mib = (bytes: number | undefined) => (bytes === undefined ? null : round(bytes / 2 ** 20));
  const arch = architectureFor(config);
  const lora = benchLoraConfig(arch);
  const adapterParams = Object.values(adapterShapes(arch, lora)).reduce((n, shape) => n + shape.reduce((a, b) => a * b, 1), 0);
  return {
    config: options.source,
    model_type: config.model_type,
    params: w.params,
    forward_ms: ms.forward === undefined ? null : round(ms.forward),
    forward_tokens_per_s: perSecond("forward"),
    train_step_ms: ms.train === undefined ? null : round(ms.train),
    train_tokens_per_s: perSecond("train"),
    generate_64_ms: ms.generate === undefined ? null : round(ms.generate),
    generate_tokens_per_s: perSecond("generate"),
    generate_engine: engine,
    generate_dtype: dtype,
    dpo_step_ms: ms.dpo === undefined ? null : round(ms.dpo),
    dpo_tokens_per_s: perSecond("dpo"),
    forward_engine_peak_mb: mib(peak.forward),
    train_engine_peak_mb: mib(peak.train),
    generate_engine_peak_mb: mib(peak.generate),
    dpo_engine_peak_mb: mib(peak.dpo),
    lora: order.includes("dpo") ? { adapter_params: adapterParams, r: lora.r, lora_alpha: lora.lora_alpha, target_modules: lora.target_modules } : null,
    engine_heap_mb: round(heap / 2 ** 20),
    train_plan_mb: order.includes("train") ? round(sftMemoryPlan(arch, { per_device_train_batch_size: spec.train.batch, per_device_eval_batch_size: spec.train.batch }, spec.train.length).total / 2 ** 20) : null,
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024),
    did_not_fit: didNotFit,
    shapes: Object.fromEntries(order.map((name) => [name, `${describeWorkload(name, spec)}${name === "generate" && engine !== "jax-js" ? ` on ${engine}` : ""}`])),
    runs,
    warmup,
    threads: kernelThreadCount(),
    relaxed_simd: relaxedSimdAvailable(),
  };
}

/** "494.0M", or the exact count below a million. */
export function parameterCount(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n.toLocaleString("en-US");
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
