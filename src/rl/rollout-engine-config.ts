// The config fields that pick where an on-policy run samples its rollouts and how the trainer
// corrects for an external engine's probabilities, shared by `rlhf ppo`, `grpo`, `rloo` and
// `online-dpo` (one home, so the flags read and default the same everywhere); and the engine a
// trainer builds from them for its policy.
import { createRolloutEngine, ROLLOUT_ENGINES, ROLLOUT_DTYPES, type LlamaCppEngineOptions, type RolloutDtype, type RolloutEngine, type RolloutEngineName } from "../generation/rollout-engine.ts";
import { ConfigError, type Specs } from "../train/config.ts";
import type { PolicyParts } from "./policy-models.ts";

export interface RolloutEngineField {
  /** Where rollouts are sampled: the built-in generator, or llama.cpp on the policy's weights of the moment. */
  rollout_engine: RolloutEngineName;
  /**
   * The weights llama.cpp samples with: f32 (the trainer's own numbers), or f16 / q8_0 for faster
   * rollouts whose probabilities the importance-sampling correction then reconciles with the
   * trainer's (FlashRL's quantized rollouts; verl's rollout dtype). A LoRA adapter stays f32.
   */
  rollout_dtype: RolloutDtype;
}

export interface ImportanceSamplingFields {
  /**
   * With an external rollout engine, weight each token's policy loss by min(π_trainer / π_engine,
   * rollout_importance_sampling_cap) (TRL's vllm_importance_sampling_correction and _cap).
   */
  rollout_importance_sampling_correction: boolean;
  rollout_importance_sampling_cap: number;
}

export const rolloutEngineDefaults: RolloutEngineField = { rollout_engine: "jax-js", rollout_dtype: "f32" };

// TRL's defaults: on, truncated at 2.
export const importanceSamplingDefaults: ImportanceSamplingFields = { rollout_importance_sampling_correction: true, rollout_importance_sampling_cap: 2 };

export const rolloutEngineSpecs: Specs<RolloutEngineField> = {
  rollout_engine: { kind: "choice", choices: ROLLOUT_ENGINES, help: "where rollouts are sampled: jax-js (built in, exact) or llama.cpp (the policy re-exported as a GGUF each step; with use_peft the base once and the adapter each step)" },
  rollout_dtype: { kind: "choice", choices: ROLLOUT_DTYPES, help: "with --rollout_engine llama.cpp: the weights it samples with, f32 (exact), f16 or q8_0 (faster; the importance-sampling correction reconciles their probabilities with the trainer's)" },
};

export const importanceSamplingSpecs: Specs<ImportanceSamplingFields> = {
  rollout_importance_sampling_correction: { kind: "bool", help: "with --rollout_engine llama.cpp: weight each token's policy loss by min(p_trainer / p_llama.cpp, cap) (truncated importance sampling, TRL's vllm_importance_sampling_correction)" },
  rollout_importance_sampling_cap: { kind: "number", min: 1, help: "the truncation of that weight (TRL's vllm_importance_sampling_cap)" },
};

/**
 * The rollout engine `name` for a trainer's policy. An external engine receives the trained
 * parameters over the frozen ones, so a policy with frozen parts must say which are its adapter's
 * (llama.cpp gets the base once and the adapter each step); anything else frozen is refused.
 */
export function policyRolloutEngine(fields: RolloutEngineField, models: Pick<PolicyParts, "arch" | "frozen" | "adapter">, options?: LlamaCppEngineOptions): RolloutEngine {
  const name = fields.rollout_engine;
  if (fields.rollout_dtype !== "f32" && name === "jax-js") throw new ConfigError(`--rollout_dtype ${fields.rollout_dtype} needs --rollout_engine llama.cpp (the built-in generator samples with the trainer's f32 weights)`);
  if (name !== "jax-js" && Object.keys(models.frozen ?? {}).length > 0 && !models.adapter) {
    throw new Error("a policy on frozen weights needs its adapter's config for an external rollout engine (PolicyParts.adapter)");
  }
  return createRolloutEngine(name, models.arch, { weightType: fields.rollout_dtype, ...options }, models.adapter);
}
