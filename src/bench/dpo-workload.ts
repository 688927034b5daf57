// The LoRA DPO step that `rlhf bench --use_peft` times, and scripts/reference/bench_torch.py
// --use_peft times in PyTorch: one optimizer step of DPO with TRL's defaults (sigmoid loss, beta
// 0.1, AdamW at lr 1e-6, gradients clipped at 1) on one batch of pairs, each pair a chosen and a
// rejected row of prompt + completion (random tokens), training a LoRA adapter with TRL's defaults
// (r 16, alpha 32, PEFT's target modules for the model type: q_proj and v_proj for Llama and
// Qwen2, c_attn for GPT-2) on the frozen random weights, its dropout off (DPO's disable_dropout).
// The reference log-probs are the base's (the adapter off), computed once when the workload is set
// up, outside the timing, as `rlhf dpo` computes them before training (TRL's precompute_ref_log_probs).
import { release } from "../engine/arrays.ts";
import type { AdamWState } from "../engine/optim.ts";
import type { Architecture } from "../models/architecture.ts";
import { initAdapter, withAdapter, type LoraConfig } from "../models/lora.ts";
import { countParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { defaultDPOConfig } from "../train/dpo-config.ts";
import { dpoBatch, dpoLoss, withReferenceLogps } from "../train/dpo.ts";
import { loraConfigFor, peftDefaults } from "../train/peft-config.ts";
import { TrainStep, type TrainStepConfig } from "../train/step.ts";

/** The LoRA DPO step's sizes: `pairs` pairs, each two rows of promptLength + completionLength tokens. */
export interface DpoWorkloadSpec {
  pairs: number;
  promptLength: number;
  completionLength: number;
  lr: number;
  step: TrainStepConfig;
}

/** Tokens the step reads: two rows per pair. */
export function dpoStepTokens(spec: DpoWorkloadSpec): number {
  return 2 * spec.pairs * (spec.promptLength + spec.completionLength);
}

/** The adapter the benchmark trains on `arch`: TRL's LoraConfig defaults. */
export function benchLoraConfig(arch: Architecture): LoraConfig {
  return loraConfigFor({ ...peftDefaults, use_peft: true }, arch, "CAUSAL_LM", "");
}

/**
 * The LoRA DPO step on `base` (borrowed; never trained), with its pairs drawn by `token`. Each
 * `run` is one optimizer step of the adapter, whose weights and moments carry over to the next.
 */
export async function loraDpoWorkload(
  arch: Architecture,
  base: Params,
  spec: DpoWorkloadSpec,
  token: () => number,
): Promise<{ run: () => Promise<void>; adapterParams: number; dispose: () => void }> {
  const config = { ...defaultDPOConfig, max_length: spec.promptLength + spec.completionLength };
  const lora = benchLoraConfig(arch);
  const trainedArch = withAdapter(arch, { ...lora, lora_dropout: 0 });
  const tokens = (n: number) => Array.from({ length: n }, token);
  const examples = Array.from({ length: spec.pairs }, () => ({ prompt: tokens(spec.promptLength), chosen: tokens(spec.completionLength), rejected: tokens(spec.completionLength) }));
  const padId = 0;
  const pairs = await withReferenceLogps(arch, base, examples, config, padId);
  const { batch } = dpoBatch(pairs, config.max_length, padId);
  const trainer = new TrainStep(dpoLoss(trainedArch, config), spec.step);
  let adapter: Params | null = initAdapter(arch, lora, base, 0);
  const adapterParams = countParams(adapter);
  let state: AdamWState | null = trainer.init(adapter);
  let stepNumber = 0;
  return {
    run: async () => {
      if (!adapter || !state) throw new Error("benchmark: the adapter was consumed by a DPO step that failed");
      const [params, moments] = [adapter, state];
      [adapter, state] = [null, null];
      const out = await trainer.step(params, moments, [batch], spec.lr, ++stepNumber, base);
      [adapter, state] = [out.params, out.state];
    },
    adapterParams,
    dispose: () => {
      release([adapter ?? [], state ?? [], batch]);
      trainer.dispose();
    },
  };
}
