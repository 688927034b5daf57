import type { Array } from "../engine/runtime.ts";
import type { Params } from "../engine/optim.ts";

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
