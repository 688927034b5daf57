// `rlhf ppo`'s config, in one place: PPO's own fields (algorithms/ppo.ts, TRL's PPOConfig names and
// defaults), the fields every on-policy run shares (train/config.ts: optimizer, sampling,
// bookkeeping), the adaptive KL controller and PPO-ptx; the defaults; and a spec for every field
// (typed: a field without a spec does not compile), from which the command's flags are made.
import { defaultPPOConfig, type PPOConfig } from "../algorithms/ppo.ts";
import { onPolicyRunDefaults, onPolicyRunSpecs, type OnPolicyRunFields, type Specs } from "../train/config.ts";
import { importanceSamplingDefaults, importanceSamplingSpecs, rolloutEngineDefaults, rolloutEngineSpecs, type ImportanceSamplingFields, type RolloutEngineField } from "./rollout-engine-config.ts";

export interface PpoRunConfig extends PPOConfig, OnPolicyRunFields, RolloutEngineField, ImportanceSamplingFields {
  /** Adaptive KL control (Ziegler et al.): target KL per response and horizon; null = fixed kl_coef. */
  target_kl: number | null;
  kl_horizon: number;
  /** PPO-ptx: weight γ of the language-modelling loss on the ptx rows (0 = off). */
  ptx_coef: number;
  /** Micro-batches each mini-batch's gradient is accumulated over (must divide batch_size / num_mini_batches). */
  gradient_accumulation_steps: number;
}

/**
 * Rows per mini-batch (one optimizer step) and per micro-batch (one forward and backward pass) when a
 * rollout of `rows` responses is split num_mini_batches ways, each accumulated over
 * gradient_accumulation_steps micro-batches: the trainer's split, and what the memory plan sizes.
 */
export function ppoUpdateRows(rows: number, config: Pick<PpoRunConfig, "num_mini_batches" | "gradient_accumulation_steps">): { miniBatch: number; microBatch: number } {
  const miniBatch = Math.max(1, Math.floor(rows / config.num_mini_batches));
  return { miniBatch, microBatch: Math.max(1, Math.floor(miniBatch / config.gradient_accumulation_steps)) };
}

export const defaultPpoRunConfig: PpoRunConfig = {
  ...onPolicyRunDefaults,
  ...defaultPPOConfig,
  target_kl: null,
  kl_horizon: 10000,
  // Used only with --ptx-data. InstructGPT's γ was 27.8 under its own loss normalisation; 1 weighs
  // the mean token loss like the policy loss.
  ptx_coef: 1,
  gradient_accumulation_steps: 1,
  ...rolloutEngineDefaults,
  ...importanceSamplingDefaults,
};

export const ppoRunSpecs: Specs<PpoRunConfig> = {
  ...onPolicyRunSpecs,
  batch_size: { kind: "int", min: 1, help: "prompts per rollout" },
  total_steps: { kind: "int", min: 1, help: "PPO iterations (rollout + updates)" },
  num_ppo_epochs: { kind: "int", min: 1, help: "passes over each rollout" },
  num_mini_batches: { kind: "int", min: 1, help: "mini-batches per pass" },
  cliprange: { kind: "number", min: 0, help: "policy ratio clip ε" },
  cliprange_value: { kind: "number", min: 0, help: "value clip ε_v" },
  vf_coef: { kind: "number", min: 0, help: "value loss weight" },
  gamma: { kind: "number", min: 0, max: 1, help: "GAE discount" },
  lam: { kind: "number", min: 0, max: 1, help: "GAE λ" },
  kl_coef: { kind: "number", min: 0, help: "KL penalty weight (initial value when target_kl is set)" },
  kl_estimator: { kind: "choice", choices: ["k1", "k3"], help: "per-token KL estimator in the reward" },
  target_kl: { kind: "number", min: 0, nullable: true, help: "adaptive KL control: target KL per response" },
  kl_horizon: { kind: "int", min: 1, help: "adaptive KL control horizon (samples)" },
  whiten_rewards: { kind: "bool", help: "whiten per-token rewards before GAE" },
  missing_eos_penalty: { kind: "number", nullable: true, help: "subtracted from the score of responses without EOS" },
  temperature: { kind: "number", min: 0, help: "sampling temperature of rollouts" },
  response_length: { kind: "int", min: 1, help: "max new tokens per response" },
  ptx_coef: { kind: "number", min: 0, help: "PPO-ptx: weight γ of the LM loss on --ptx-data (needs --ptx-data)" },
  ...rolloutEngineSpecs,
  ...importanceSamplingSpecs,
  gradient_accumulation_steps: { kind: "int", min: 1, help: "micro-batches per mini-batch (must divide batch_size / num_mini_batches)" },
};

/** Fields a resumed PPO run must keep: they fix the prompts drawn and every batch's shape. */
export const PPO_FIXED_FIELDS = ["seed", "batch_size", "num_mini_batches", "response_length", "gradient_accumulation_steps"] as const;
