// The optimizer settings every trainer takes, under transformers' TrainingArguments names and with
// its defaults (TRL's configs inherit them): AdamW's betas and epsilon, decoupled weight decay with
// HF's exemptions, and gradient clipping. One home, so that SFT, reward models, DPO, KTO, PPO and
// the group methods cannot drift apart again.
import type { TrainStepConfig } from "./step.ts";

export interface OptimizerFields {
  /** Peak learning rate of AdamW. */
  learning_rate: number;
  /** Decoupled weight decay (AdamW); biases and norm weights are exempt, as in HF's Trainer. */
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  /** Clip the global gradient norm to this; 0 turns clipping off. */
  max_grad_norm: number;
}

/** TrainingArguments' defaults (learning_rate is each algorithm's own). */
export const optimizerDefaults: Omit<OptimizerFields, "learning_rate"> = {
  weight_decay: 0,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  max_grad_norm: 1,
};

/** HF's Trainer exempts biases and normalisation weights from weight decay (names may carry a model prefix). */
export function decaysWeight(name: string): boolean {
  return !/(\.bias$|norm|\.ln_)/.test(name);
}

/** The TrainStep settings a config asks for. */
export function trainStepConfig(c: OptimizerFields): TrainStepConfig {
  return {
    adamw: { beta1: c.adam_beta1, beta2: c.adam_beta2, eps: c.adam_epsilon, weightDecay: c.weight_decay, decays: decaysWeight },
    maxGradNorm: c.max_grad_norm > 0 ? c.max_grad_norm : null,
  };
}
