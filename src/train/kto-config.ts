// trl.KTOConfig: the shared TrainingArguments, KTO's own fields (algorithms/kto.ts) and the length
// limits, with TRL's defaults (learning_rate 1e-6, beta 0.1, loss_type "kto", both weights 1) and
// a spec per field for the config file and the flags.
import { defaultKTOConfig, type KTOConfig } from "../algorithms/kto.ts";
import { ConfigError, defaultDPOConfig, dpoSpecs, type Specs, type TrainingArguments } from "./config.ts";

export interface KTOTrainingConfig extends TrainingArguments, KTOConfig {
  /** Longest prompt + completion in tokens; completions are cut to fit. null = the model's context. */
  max_length: number | null;
  /** Longest prompt in tokens, cut from the left; null = no separate limit. */
  max_prompt_length: number | null;
  /** Longest completion in tokens, cut from the right; null = no separate limit. */
  max_completion_length: number | null;
}

// config.ts keeps TrainingArguments' defaults and specs to itself; DPO's are those plus DPO's own
// fields (and DPO's learning_rate, 1e-6, is TRL's KTO default too), so dropping DPO's leaves them.
const { beta: _b, loss_type: _l, label_smoothing: _s, max_length: _m, max_prompt_length: _p, max_completion_length: _c, ...trainingDefaults } = defaultDPOConfig;
const { beta: _sb, loss_type: _sl, label_smoothing: _ss, max_length: _sm, max_prompt_length: _sp, max_completion_length: _sc, ...trainingSpecs } = dpoSpecs;

export const defaultKTOTrainingConfig: KTOTrainingConfig = {
  ...trainingDefaults,
  ...defaultKTOConfig,
  learning_rate: 1e-6,
  max_length: 1024,
  max_prompt_length: 512,
  max_completion_length: null,
};

export const ktoSpecs: Specs<KTOTrainingConfig> = {
  ...trainingSpecs,
  beta: { kind: "number", min: 0, help: "strength of the implicit KL constraint to the reference" },
  loss_type: { kind: "choice", choices: ["kto", "apo_zero_unpaired"], help: "kto (KL reference point) or apo_zero_unpaired (reference point 0)" },
  desirable_weight: { kind: "number", min: 0, help: "weight of desirable examples' losses" },
  undesirable_weight: { kind: "number", min: 0, help: "weight of undesirable examples' losses" },
  max_length: { kind: "int", min: 2, nullable: true, help: "longest prompt + completion; completions are cut to fit" },
  max_prompt_length: { kind: "int", min: 1, nullable: true, help: "longest prompt, cut from the left" },
  max_completion_length: { kind: "int", min: 1, nullable: true, help: "longest completion, cut from the right" },
};

/**
 * What the field specs cannot say: beta > 0, and for "kto" batches of at least 2, since each
 * prompt's mismatched completion comes from another example of its batch (TRL refuses the same).
 */
export function checkKTOConfig(config: KTOTrainingConfig): void {
  if (!(config.beta > 0)) throw new ConfigError(`beta must be greater than 0, got ${config.beta}`);
  if (config.loss_type !== "kto") return;
  for (const field of ["per_device_train_batch_size", "per_device_eval_batch_size"] as const) {
    if (config[field] < 2) throw new ConfigError(`loss_type kto needs ${field} of at least 2 (the KL reference point pairs each prompt with another completion of its batch), got ${config[field]}`);
  }
}
