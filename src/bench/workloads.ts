// The benchmark's workloads over one model with random weights: a training step, a forward pass,
// KV-cached generation, and a LoRA DPO step (dpo-workload.ts; `rlhf bench --use_peft`). Shared by the timing benchmark (standard.ts, model-bench.ts) and
// the kernel profiler (kernel-profile.ts). The standard benchmark model (configs/bench-standard.json)
// is GPT-2 style, vocab 512, context 128, d_model 256, 4 layers, 4 heads, MLP 1024, pre-LN, untied
// head; batch 8 x 128; Adam. `--config` runs a real model's shape (realSizeSpec).
import { readFileSync } from "node:fs";
import { initEngine, type Array } from "../engine/runtime.ts";
import { compile, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { parseConfig, type ModelConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import { causalLmForward, fullBatch } from "../models/forward.ts";
import { countParams, initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { Generator } from "../generation/generate.ts";
import type { AdamWState } from "../engine/optim.ts";
import { TrainStep, type TrainStepConfig } from "../train/step.ts";
import { lmBatchFromRows, lmLoss } from "../train/lm-loss.ts";
import { loraDpoWorkload, type DpoWorkloadSpec } from "./dpo-workload.ts";
import { llamaCppGenerateWorkload } from "./llama-cpp-generate.ts";
import type { RolloutDtype, RolloutEngineName } from "../generation/rollout-engine.ts";
import { kernelThreadCount } from "../engine/worker-shim.ts";

const standardConfigUrl = new URL("../../configs/bench-standard.json", import.meta.url);
export const standardConfig = parseConfig(JSON.parse(readFileSync(standardConfigUrl, "utf8")), "configs/bench-standard.json");

export type WorkloadName = "train" | "forward" | "generate" | "dpo";
export const workloadNames: WorkloadName[] = ["train", "forward", "generate", "dpo"];

/** The sizes of the workloads (same fields as scripts/reference/bench_torch.py's). */
export interface WorkloadSpec {
  /** One optimizer step over `batch` rows of `length` tokens, every next token a target. */
  train: { batch: number; length: number; lr: number; step: TrainStepConfig };
  forward: { batch: number; length: number };
  /** Greedy, `batch` sequences of a `promptLength`-token prompt, then `newTokens` tokens. */
  generate: { batch: number; promptLength: number; newTokens: number };
  /** One LoRA DPO step (dpo-workload.ts). */
  dpo: DpoWorkloadSpec;
}

const clippedAdamW = { adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, maxGradNorm: 1 };

export const standardSpec: WorkloadSpec = {
  train: { batch: 8, length: 128, lr: 1e-3, step: { adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, maxGradNorm: null } },
  forward: { batch: 8, length: 128 },
  generate: { batch: 8, promptLength: 64, newTokens: 64 },
  dpo: { pairs: 4, promptLength: 64, completionLength: 64, lr: 1e-6, step: clippedAdamW },
};

/**
 * A real model's shape (`rlhf bench --config`): SFT with TRL's defaults (AdamW, no decay, clip 1);
 * LoRA DPO on one pair of 256-token rows, with DPOConfig's default learning rate.
 */
export const realSizeSpec: WorkloadSpec = {
  train: { batch: 1, length: 512, lr: 2e-5, step: clippedAdamW },
  forward: { batch: 1, length: 512 },
  generate: { batch: 8, promptLength: 16, newTokens: 64 },
  dpo: { pairs: 1, promptLength: 128, completionLength: 128, lr: 1e-6, step: clippedAdamW },
};

/** What each workload computes, for messages: "SFT training step, batch 1 × 512 (AdamW)". */
export function describeWorkload(name: WorkloadName, spec: WorkloadSpec): string {
  if (name === "train") return `training step, batch ${spec.train.batch} × ${spec.train.length} (AdamW)`;
  if (name === "forward") return `forward pass, batch ${spec.forward.batch} × ${spec.forward.length}`;
  if (name === "dpo") {
    const d = spec.dpo;
    return `LoRA DPO step, ${d.pairs} pair${d.pairs === 1 ? "" : "s"} × 2 rows of (${d.promptLength}-token prompt + ${d.completionLength}-token completion) (AdamW on the adapter)`;
  }
  const g = spec.generate;
  return `generation, ${g.batch} sequences × (${g.promptLength}-token prompt + ${g.newTokens} new tokens)`;
}

export interface Workloads {
  /** Each runs one repetition to completion (results read back to the host); the first sets it up. */
  run: Record<WorkloadName, () => Promise<void>>;
  params: number;
  /** Frees what one workload set up (optimizer moments, compiled programs, llama.cpp's model); the weights stay. */
  release(name: WorkloadName): Promise<void>;
  dispose(): Promise<void>;
}

export interface WorkloadOptions {
  /** Where the generation workload runs: jax-js (the default) or llama.cpp (llama-cpp-generate.ts), with jax-js's thread count. */
  rolloutEngine?: RolloutEngineName;
  /** The weights llama.cpp generates with (f32 by default). */
  rolloutDtype?: RolloutDtype;
}

export function standardWorkloads(options: WorkloadOptions = {}): Promise<Workloads> {
  return modelWorkloads(standardConfig, standardSpec, options);
}

/** The workloads of `spec` on `config`'s architecture with weights from its init rule (seed 0). */
export async function modelWorkloads(config: ModelConfig, spec: WorkloadSpec, options: WorkloadOptions = {}): Promise<Workloads> {
  await initEngine();
  const arch = architectureFor(config);
  // The training step consumes the weights it is given (even when it fails, out of memory), so every
  // workload reads them from here, and a failed step leaves none.
  let current: Params | null = initParams(arch, 0);
  const weights = (): Params => {
    if (!current) throw new Error("benchmark: the weights were consumed by a training step that failed");
    return current;
  };
  const rng = new HostRng(0);
  const tokenRows = (b: number, t: number) => Array.from({ length: b }, () => Array.from({ length: t }, () => rng.int(arch.vocabSize)));
  const batchOf = (rows: number[][]) => lmBatchFromRows(rows, rows.map((r) => r.map(() => 1)), rows[0]!.length);
  const trainRows = tokenRows(spec.train.batch, spec.train.length);
  const sameShape = spec.forward.batch === spec.train.batch && spec.forward.length === spec.train.length;
  const forwardRows = sameShape ? trainRows : tokenRows(spec.forward.batch, spec.forward.length);
  const g = spec.generate;
  // The standard benchmark's prompts are the first tokens of its training rows.
  const promptSource = g.batch === trainRows.length && g.promptLength <= spec.train.length ? trainRows : tokenRows(g.batch, g.promptLength);
  const prompts = promptSource.map((r) => r.slice(0, g.promptLength));

  const setUp: Record<WorkloadName, () => { run: () => Promise<void>; dispose: () => void | Promise<void> }> = {
    train: () => {
      const batch = batchOf(trainRows);
      const trainer = new TrainStep(lmLoss(arch), spec.train.step);
      let state: AdamWState | null = trainer.init(weights());
      let stepNumber = 0;
      return {
        run: async () => {
          const [params, moments] = [weights(), state!];
          [current, state] = [null, null];
          const out = await trainer.step(params, moments, [batch], spec.train.lr, ++stepNumber);
          [current, state] = [out.params, out.state];
        },
        dispose: () => {
          release([state ?? [], batch]);
          trainer.dispose();
        },
      };
    },
    forward: () => {
      const batch = batchOf(forwardRows);
      const forward = compile((p: Params, i: Array, q: Array, m: Array) => causalLmForward(arch, p, fullBatch(i, q, m)));
      return {
        run: async () => {
          await toHost(forward(weights(), batch.inputIds, batch.positionIds, batch.attentionMask));
        },
        dispose: () => {
          release(batch);
          forward.dispose();
        },
      };
    },
    generate: () => {
      if (options.rolloutEngine === "llama.cpp") return llamaCppGenerateWorkload(config, weights, prompts, g.newTokens, kernelThreadCount(), options.rolloutDtype ?? "f32");
      const generator = new Generator(arch);
      return {
        run: async () => {
          const out = await generator.generate(weights(), prompts, { temperature: 0, maxNewTokens: g.newTokens });
          if (out.some((x) => x.completionIds.length !== g.newTokens)) throw new Error("benchmark generation stopped early");
        },
        dispose: () => generator.dispose(),
      };
    },
    dpo: () => {
      // Set up at its first run (the warm-up): the reference log-probs are a forward pass.
      let built: Awaited<ReturnType<typeof loraDpoWorkload>> | null = null;
      return {
        run: async () => {
          built ??= await loraDpoWorkload(arch, weights(), spec.dpo, () => rng.int(arch.vocabSize));
          await built.run();
        },
        dispose: () => built?.dispose(),
      };
    },
  };
  const live = new Map<WorkloadName, { run: () => Promise<void>; dispose: () => void | Promise<void> }>();
  const workload = (name: WorkloadName) => {
    let w = live.get(name);
    if (!w) live.set(name, (w = setUp[name]()));
    return w;
  };
  const releaseOne = async (name: WorkloadName) => {
    const w = live.get(name);
    live.delete(name);
    await w?.dispose();
  };
  return {
    run: { train: () => workload("train").run(), forward: () => workload("forward").run(), generate: () => workload("generate").run(), dpo: () => workload("dpo").run() },
    params: countParams(weights()),
    release: releaseOne,
    dispose: async () => {
      for (const name of [...live.keys()]) await releaseOne(name);
      if (current) release(current);
    },
  };
}
