import type { Array } from "../engine/runtime.ts";
import type { Params } from "../engine/optim.ts";
import type { TensorMap } from "../io/tensors.ts";
import type { BaseConfig, Fields } from "./config-fields.ts";

export type { Params };

/** Token ids, their positions and the additive attention bias for one forward pass. */
export interface ForwardBatch {
  inputIds: Array; // [B, T] int32
  positionIds: Array; // [B, T] int32
  bias: Array; // [B, 1, 1, T, Tk] from layers.attentionBias
  /**
   * Only the last position's hidden state is wanted (a generator's prefill): the last layer then
   * computes keys and values for every position (the cache needs them) but queries, attention output
   * and MLP for the last position only. `hidden` is then [B, 1, D].
   */
  lastPositionOnly?: boolean;
  /**
   * The weights named by Architecture.transposedForDecoding are passed transposed ([out, in] where
   * the checkpoint stores [in, out]). Set by the generator, whose few-row matmuls read them faster so.
   */
  transposedWeights?: boolean;
  /** Set by an architecture with an adapter attached (models/lora.ts withAdapter), never by callers. */
  lora?: LoraPass;
  /**
   * A training pass's PRNG key [2] (uint32) for dropout on the adapter's input (lora_dropout).
   * Absent in evaluation, scoring and generation, which run without dropout (PyTorch's eval mode).
   */
  dropoutKey?: Array;
}

/** What a pass's projections need to run an attached LoRA adapter (layers.ts project). */
export interface LoraPass {
  /** lora_alpha / r, or lora_alpha / √r with rsLoRA. */
  scaling: number;
  /** Dropout probability on the adapter's input; 0 when the pass has no dropout key. */
  dropout: number;
  /** One PRNG key per adapted module, [M, 2], row `index.get(module)`; present when dropout > 0. */
  keys?: Array;
  index: ReadonlyMap<string, number>;
}

/** Keys and values of earlier positions, one fixed-size buffer per layer: [B, S, nKV, hd]. */
export interface KvCache {
  keys: Array[];
  values: Array[];
}

/** For a decode step: the cache, and which slot (one-hot over S) this step writes. */
export interface PastState extends KvCache {
  slotOneHot: Array; // [B, S] float32
}

export interface BodyOutput {
  hidden: Array; // [B, T, D], after the final norm
  /** This pass's keys and values ([B, T, nKV, hd] without past, the updated cache with past). */
  present: KvCache;
}

/** Shape of every parameter, keyed by its Hugging Face name. */
export type ParamShapes = Record<string, number[]>;

export interface InitRule {
  /** Standard deviation for normal init; 0 with `constant` for norms and biases. */
  std: number;
  constant?: number;
}

/** What an architecture builds from its config: everything architecture.ts's Architecture has but the config. */
export interface Backbone {
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
  /**
   * Floats a training pass keeps per token, per layer and per output of the layer's matrices, as
   * measured with wasmMemoryStats (train/memory-plan.ts plans memory from it): the activations
   * autodiff keeps plus the temporaries of the backward pass.
   */
  trainFloatsPerOutput: number;
}

/**
 * One architecture (one file under src/models, one line in registry.ts): everything that differs
 * between Llama, GPT-2, Qwen2, ... is here, so no other code asks which one a model is.
 */
export interface ModelFamily<C extends BaseConfig> {
  modelType: C["model_type"];
  /** transformers' class names for `architectures`: the causal LM (the default), the sequence classifier (reward and value models), the bare backbone. */
  classes: { causalLm: string; sequenceClassifier: string; backbone: string };
  /** config.json with transformers' defaults filled; refuses (naming file and field) any setting `build` does not honour. */
  parseConfig(f: Fields): C;
  build(config: C): Backbone;
  /**
   * Checkpoint names as savers of this architecture write them → parameter names: prefixes some
   * savers leave out, recomputable buffers that are not weights. Returns a new map.
   */
  checkpointNames(tensors: TensorMap): TensorMap;
  /** Pad id for sequence-classifier batches when neither the tokenizer nor the config names one. */
  defaultPadId(config: C): number;
  /** LoRA's target_modules when none are given: PEFT's entry for this model_type (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
  defaultLoraTargets: readonly string[];
}
