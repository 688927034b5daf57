// One interface over the architectures: the registered one for config.model_type, built from its config.
import type { ModelConfig } from "./config.ts";
import { isSequenceClassifier } from "./config-fields.ts";
import { familyOf } from "./registry.ts";
import type { Backbone } from "./types.ts";

/** Name of the scalar head of a sequence classifier (reward model) or value model, as in transformers. */
export const SCORE_HEAD = "score.weight";

export interface Architecture extends Backbone {
  config: ModelConfig;
}

/**
 * Sequence classifiers (reward models) keep the backbone and swap the LM head for transformers'
 * scalar head `score.weight` [num_labels, D], read at the last non-padding token.
 */
export function architectureFor(config: ModelConfig): Architecture {
  const arch = { config, ...familyOf(config).build(config) };
  if (!isSequenceClassifier(config)) return arch;
  const { ["lm_head.weight"]: _dropped, ...shapes } = arch.paramShapes;
  return { ...arch, paramShapes: { ...shapes, [SCORE_HEAD]: [config.num_labels ?? 1, arch.hiddenSize] } };
}

/** The config of `config`'s backbone as a transformers sequence classifier with one label (a reward or value model). */
export function asSequenceClassifier(config: ModelConfig, padTokenId: number): ModelConfig {
  return { ...config, architectures: [familyOf(config).classes.sequenceClassifier], num_labels: 1, pad_token_id: padTokenId };
}

/** Pad id for reward-model batches when neither the tokenizer nor the config names one. */
export function defaultPadId(config: ModelConfig): number {
  return familyOf(config).defaultPadId(config);
}
