// One interface over the architectures, chosen by config.model_type.
import type { ModelConfig } from "./config.ts";
import { isSequenceClassifier, llamaHeadDim } from "./config.ts";
import { gpt2Body, gpt2Conv1dWeights, gpt2InitRule, gpt2LmHeadName, gpt2ParamShapes } from "./gpt2.ts";
import { llamaBody, llamaInitRule, llamaLmHeadName, llamaParamShapes } from "./llama.ts";
import type { BodyOutput, ForwardBatch, InitRule, Params, ParamShapes, PastState } from "./types.ts";

/** Name of the scalar head of a sequence classifier (reward model) or value model, as in transformers. */
export const SCORE_HEAD = "score.weight";

export interface Architecture {
  config: ModelConfig;
  paramShapes: ParamShapes;
  initRule: (name: string) => InitRule;
  /** The matrix the LM head multiplies by (the embedding when tied). */
  lmHeadName: string;
  body: (params: Params, batch: ForwardBatch, past?: PastState) => BodyOutput;
  /**
   * Weights stored [in, out] that a decoding pass reads faster transposed (ForwardBatch.transposedWeights):
   * a matmul of a few rows streams its weight matrix, and jax-js's kernel for x·Wᵀ walks each row of
   * W contiguously where x·W strides down its columns.
   */
  transposedForDecoding: string[];
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
  vocabSize: number;
  maxPositions: number;
}

/**
 * Sequence classifiers (reward models) keep the backbone and swap the LM head for transformers'
 * scalar head `score.weight` [num_labels, D], read at the last non-padding token.
 */
export function architectureFor(config: ModelConfig): Architecture {
  const arch = backboneFor(config);
  if (!isSequenceClassifier(config)) return arch;
  const { ["lm_head.weight"]: _dropped, ...shapes } = arch.paramShapes;
  return { ...arch, paramShapes: { ...shapes, [SCORE_HEAD]: [config.num_labels ?? 1, arch.hiddenSize] } };
}

function backboneFor(config: ModelConfig): Architecture {
  if (config.model_type === "llama") {
    return {
      config,
      paramShapes: llamaParamShapes(config),
      initRule: llamaInitRule,
      lmHeadName: llamaLmHeadName(config),
      body: (params, batch, past) => llamaBody(config, params, batch, past),
      transposedForDecoding: [],
      numLayers: config.num_hidden_layers,
      numKvHeads: config.num_key_value_heads,
      headDim: llamaHeadDim(config),
      hiddenSize: config.hidden_size,
      vocabSize: config.vocab_size,
      maxPositions: config.max_position_embeddings,
    };
  }
  return {
    config,
    paramShapes: gpt2ParamShapes(config),
    initRule: gpt2InitRule(config),
    lmHeadName: gpt2LmHeadName(config),
    body: (params, batch, past) => gpt2Body(config, params, batch, past),
    transposedForDecoding: gpt2Conv1dWeights(config),
    numLayers: config.n_layer,
    numKvHeads: config.n_head,
    headDim: config.n_embd / config.n_head,
    hiddenSize: config.n_embd,
    vocabSize: config.vocab_size,
    maxPositions: config.n_positions,
  };
}

