// trl.KTOConfig: the shared TrainingArguments and length limits (preference-config.ts) and KTO's
// own fields (algorithms/kto.ts), with TRL's defaults (learning_rate 1e-6, beta 0.1, loss_type
// "kto", both weights 1) and a spec per field for the config file and the flags.
import { defaultKTOConfig, type KTOConfig } from "../algorithms/kto.ts";
import { ConfigError, type Specs } from "./config.ts";
import { preferenceTrainingDefaults, preferenceTrainingSpecs, type PreferenceTrainingArguments } from "./preference-config.ts";

export interface KTOTrainingConfig extends PreferenceTrainingArguments, KTOConfig {}

export const defaultKTOTrainingConfig: KTOTrainingConfig = { ...preferenceTrainingDefaults, ...defaultKTOConfig };

export const ktoSpecs: Specs<KTOTrainingConfig> = {
  ...preferenceTrainingSpecs,
  beta: { kind: "number", min: 0, help: "strength of the implicit KL constraint to the reference" },
  loss_type: { kind: "choice", choices: ["kto", "apo_zero_unpaired"], help: "kto (KL reference point) or apo_zero_unpaired (reference point 0)" },
  desirable_weight: { kind: "number", min: 0, help: "weight of desirable examples' losses" },
  undesirable_weight: { kind: "number", min: 0, help: "weight of undesirable examples' losses" },
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
