// `rlhf grpo` and `rlhf rloo`'s config, in one place: the group methods' fields
// (algorithms/grpo.ts, TRL's GRPOConfig / RLOOConfig names), the fields every on-policy
// run shares (train/config.ts), the defaults of each command, and a spec for every field (typed: a
// field without a spec does not compile), from which the commands' flags are made.
import { defaultGRPOConfig, type GRPOConfig } from "../algorithms/grpo.ts";
import { dropoutSpecs, onPolicyRunDefaults, onPolicyRunSpecs, type FieldSpec, type OnPolicyRunFields, type Specs } from "../train/config.ts";
import type { DropoutField } from "../train/peft-config.ts";
import { importanceSamplingDefaults, importanceSamplingSpecs, rolloutEngineDefaults, rolloutEngineSpecs, type ImportanceSamplingFields, type RolloutEngineField } from "./rollout-engine-config.ts";

export interface GroupRunConfig extends GRPOConfig, OnPolicyRunFields, DropoutField, RolloutEngineField, ImportanceSamplingFields {
  /** Micro-batches each update's batch_size × num_generations completions are split into. */
  gradient_accumulation_steps: number;
  /** RLOO only (TRL's RLOOConfig): normalise the batch's advantages to mean 0, std 1. */
  normalize_advantages: boolean;
}

const groupRunDefaults = {
  ...onPolicyRunDefaults,
  ...rolloutEngineDefaults,
  ...importanceSamplingDefaults,
  gradient_accumulation_steps: 1,
  normalize_advantages: false,
  // TRL's GRPOConfig and RLOOConfig keep dropout on.
  disable_dropout: false,
  // Small models, short completions: TRL's 256 would mostly be padding.
  max_completion_length: 64,
};

/** TRL's GRPOConfig defaults, except beta: DeepSeekMath's 0.04 (TRL's default until 0.19), so the KL leash is on. */
export const defaultGrpoRunConfig: GroupRunConfig = { ...defaultGRPOConfig, ...groupRunDefaults, beta: 0.04 };
/** TRL's RLOOConfig defaults: two completions per prompt, β = 0.05 in the reward. */
export const defaultRlooRunConfig: GroupRunConfig = { ...defaultGRPOConfig, ...groupRunDefaults, num_generations: 2, beta: 0.05 };

/** The fields' specs; help texts say what each means for GRPO or for RLOO. */
export function groupRunSpecs(algorithm: "grpo" | "rloo"): Specs<GroupRunConfig> {
  const grpoOnly = (spec: FieldSpec): FieldSpec => (algorithm === "grpo" ? spec : { ...spec, help: `${spec.help} (GRPO only; RLOO ignores it)` });
  return {
    ...onPolicyRunSpecs,
    ...dropoutSpecs,
    batch_size: { kind: "int", min: 1, help: "prompts per step (each gets num_generations completions)" },
    total_steps: { kind: "int", min: 1, help: "steps (generation + num_iterations updates)" },
    num_generations: { kind: "int", min: 2, help: "completions per prompt (G)" },
    num_iterations: { kind: "int", min: 1, help: "optimizer updates per generated batch (μ)" },
    gradient_accumulation_steps: { kind: "int", min: 1, help: "micro-batches per update (must divide batch_size × num_generations)" },
    beta:
      algorithm === "grpo"
        ? { kind: "number", min: 0, help: "weight of the per-token k3 KL penalty in the loss" }
        : { kind: "number", min: 0, help: "weight of the sequence KL subtracted from each score" },
    epsilon: { kind: "number", min: 0, help: algorithm === "grpo" ? "clip range ε: each token's ratio is clipped to [1 − ε, 1 + epsilon_high]" : "clip range ε: each completion's ratio is clipped to [1 − ε, 1 + epsilon_high]" },
    epsilon_high: {
      kind: "number",
      min: 0,
      nullable: true,
      help: algorithm === "grpo" ? "upper clip ε_high (DAPO's clip-higher; null = epsilon); with loss_type cispo the cap on the ratio itself (null = 5)" : "upper clip ε_high (DAPO's clip-higher; null = epsilon)",
    },
    loss_type: grpoOnly({
      kind: "choice",
      choices: ["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"],
      help: "policy loss: grpo (clipped; mean per completion, then over completions), dr_grpo (clipped; sum / (completions × max_completion_length)), dapo (clipped; mean over the update's tokens), bnpo (clipped; mean over each micro-batch's tokens), cispo (detached capped ratio × log π; as dapo), sapo (sigmoid gate, no clip; as grpo)",
    }),
    importance_sampling_level: grpoOnly({ kind: "choice", choices: ["token", "sequence"], help: "one ratio per token, or one per completion (GSPO: exp of its mean log-ratio)" }),
    sapo_temperature_pos: grpoOnly({ kind: "number", min: 0, help: "loss_type sapo: gate temperature for positive advantages (> 0)" }),
    sapo_temperature_neg: grpoOnly({ kind: "number", min: 0, help: "loss_type sapo: gate temperature for zero and negative advantages (> 0)" }),
    mask_truncated_completions: { kind: "bool", help: "leave completions without EOS (cut at max_completion_length) out of the loss; they still count in the advantages" },
    scale_rewards: grpoOnly({ kind: "choice", choices: ["group", "batch", "none"], help: "divide centred rewards by the group's std (group), the batch's (batch), or nothing (none)" }),
    normalize_advantages: { kind: "bool", help: algorithm === "rloo" ? "normalise the batch's advantages to mean 0, std 1" : "RLOO only; GRPO ignores it" },
    temperature: { kind: "number", min: 0, help: "sampling temperature (log-probs use the same)" },
    max_completion_length: { kind: "int", min: 1, help: "max new tokens per completion" },
    ...rolloutEngineSpecs,
    ...importanceSamplingSpecs,
    ...(algorithm === "rloo"
      ? { rollout_importance_sampling_correction: { ...importanceSamplingSpecs.rollout_importance_sampling_correction, help: "with --rollout_engine llama.cpp: weight each completion's loss by min(Π p_trainer / p_llama.cpp over its tokens, cap) (truncated importance sampling at RLOO's level, one ratio per completion)" } }
      : {}),
  };
}

/** Fields a resumed group run must keep: they fix the prompts drawn and every batch's shape. */
export const GROUP_FIXED_FIELDS = ["seed", "batch_size", "num_generations", "max_completion_length", "gradient_accumulation_steps"] as const;
