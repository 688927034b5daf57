// `rlhf online-dpo`'s config, in one place: TRL's OnlineDPOConfig fields (beta, loss_type,
// missing_eos_penalty, temperature), PPO's names where they mean the same (response_length), the
// fields every on-policy run shares (train/config.ts), defaults and a spec for every field.
import { dropoutSpecs, onPolicyRunDefaults, onPolicyRunSpecs, type OnPolicyRunFields, type Specs } from "../train/config.ts";
import type { DropoutField } from "../train/peft-config.ts";
import { rolloutEngineDefaults, rolloutEngineSpecs, type RolloutEngineField } from "./rollout-engine-config.ts";

export interface OnlineDpoRunConfig extends OnPolicyRunFields, DropoutField, RolloutEngineField {
  /** Strength of the implicit KL constraint to the reference (DPO's β). */
  beta: number;
  /** sigmoid (DPO) or ipo (on length-averaged log-probs), as TRL's OnlineDPOConfig offers. */
  loss_type: "sigmoid" | "ipo";
  /** Assumed probability that the reward source ranked a pair the wrong way round (sigmoid only; cDPO). */
  label_smoothing: number;
  /** Subtracted from the score of completions without EOS before ranking; null = no penalty. */
  missing_eos_penalty: number | null;
  temperature: number;
  /** Max new tokens per completion (TRL: max_new_tokens; PPO's name here). */
  response_length: number;
  /** Micro-batches each step's pairs are split into. */
  gradient_accumulation_steps: number;
}

// TRL's OnlineDPOConfig: beta 0.1, loss_type sigmoid, temperature 0.9, learning_rate 5e-7 (for
// billion-parameter models; small models here learn at PPO's rates, so the run default is PPO's).
export const defaultOnlineDpoRunConfig: OnlineDpoRunConfig = {
  ...onPolicyRunDefaults,
  ...rolloutEngineDefaults,
  learning_rate: 3e-6,
  beta: 0.1,
  loss_type: "sigmoid",
  label_smoothing: 0,
  missing_eos_penalty: null,
  temperature: 0.9,
  response_length: 53,
  gradient_accumulation_steps: 1,
  disable_dropout: true,
};

export const onlineDpoRunSpecs: Specs<OnlineDpoRunConfig> = {
  ...onPolicyRunSpecs,
  ...dropoutSpecs,
  batch_size: { kind: "int", min: 1, help: "prompts per step (each gets two completions: one pair)" },
  total_steps: { kind: "int", min: 1, help: "steps (generation + one update)" },
  beta: { kind: "number", min: 0, help: "strength of the implicit KL constraint to the reference" },
  loss_type: { kind: "choice", choices: ["sigmoid", "ipo"], help: "DPO loss variant" },
  label_smoothing: { kind: "number", min: 0, max: 0.5, help: "assumed share of pairs ranked the wrong way (sigmoid)" },
  missing_eos_penalty: { kind: "number", nullable: true, help: "subtracted from the score of completions without EOS" },
  temperature: { kind: "number", min: 0, help: "sampling temperature" },
  response_length: { kind: "int", min: 1, help: "max new tokens per completion" },
  gradient_accumulation_steps: { kind: "int", min: 1, help: "micro-batches per update (must divide batch_size)" },
  ...rolloutEngineSpecs,
};

/** Fields a resumed run must keep: they fix the prompts drawn and every batch's shape. */
export const ONLINE_DPO_FIXED_FIELDS = ["seed", "batch_size", "response_length", "gradient_accumulation_steps"] as const;
