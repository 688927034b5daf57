// trl.DPOConfig: the shared TrainingArguments and length limits (preference-config.ts) and DPO's
// own fields, with TRL's defaults (learning_rate 1e-6, beta 0.1, loss_type "sigmoid") and a spec
// per field for the config file and the flags.
import type { DpoLossType } from "../algorithms/dpo.ts";
import { ConfigError, type Specs } from "./config.ts";
import { preferenceTrainingDefaults, preferenceTrainingSpecs, type PreferenceTrainingArguments } from "./preference-config.ts";

/** The fields the loss reads are documented in algorithms/dpo.ts. */
export interface DPOConfig extends PreferenceTrainingArguments {
  /** Strength of the implicit KL constraint: higher keeps the policy closer to the reference. */
  beta: number;
  loss_type: DpoLossType;
  /** Assumed probability that a preference label is flipped (sigmoid and robust). */
  label_smoothing: number;
  /**
   * RPO (Pang et al. 2024, TRL's rpo_alpha): adds α × the chosen completions' mean token NLL to the
   * loss, which holds up their likelihood while DPO widens the margin; null = plain DPO.
   */
  rpo_alpha: number | null;
}

export const defaultDPOConfig: DPOConfig = { ...preferenceTrainingDefaults, beta: 0.1, loss_type: "sigmoid", label_smoothing: 0, rpo_alpha: null };

export const dpoSpecs: Specs<DPOConfig> = {
  ...preferenceTrainingSpecs,
  beta: { kind: "number", min: 0, help: "strength of the implicit KL constraint to the reference" },
  loss_type: { kind: "choice", choices: ["sigmoid", "ipo", "hinge", "robust"], help: "DPO loss variant" },
  label_smoothing: { kind: "number", min: 0, max: 0.5, help: "assumed label-flip probability (sigmoid, robust)" },
  rpo_alpha: { kind: "number", min: 0, nullable: true, help: "weight of the chosen completions' NLL added to the loss (RPO); unset = plain DPO" },
};

/** What the field specs cannot say: beta > 0 (IPO divides by it), robust's label_smoothing < ½. */
export function checkDPOConfig(config: DPOConfig): void {
  if (!(config.beta > 0)) throw new ConfigError(`beta must be greater than 0, got ${config.beta}`);
  if (config.loss_type === "robust" && config.label_smoothing >= 0.5) throw new ConfigError(`loss_type robust needs label_smoothing below 0.5, got ${config.label_smoothing}`);
}
