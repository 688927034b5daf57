// Forward passes and the causal-LM loss, as traced functions over (params, batch).
import { np, type Array } from "../engine/runtime.ts";
import type { Architecture } from "./architecture.ts";
import { attentionBias } from "./layers.ts";
import { headForward, headLogits, type HeadOptions } from "./lm-head.ts";
import type { ForwardBatch, Params } from "./types.ts";

/** Batch for a full (non-cached) pass; attentionMask [B, T] float32, 1 for real tokens. */
export function fullBatch(inputIds: Array, positionIds: Array, attentionMask: Array): ForwardBatch {
  return { inputIds, positionIds, bias: attentionBias(attentionMask, inputIds.shape[1]!) };
}

/** A training pass's batch: with its PRNG key (TrainStep's `rng`) as the dropout key, when it has one (LoRA's lora_dropout). */
export function withDropoutKey(batch: ForwardBatch, rng: Array | undefined): ForwardBatch {
  return rng ? { ...batch, dropoutKey: rng } : batch;
}

export function lmLogits(arch: Architecture, params: Params, hidden: Array): Array {
  return headLogits(hidden, params[arch.lmHeadName]!.ref); // [B, T, V]
}

/** Logits for every position: [B, T, V]. For sampling and tests; losses read the head through lm-head.ts. */
export function causalLmForward(arch: Architecture, params: Params, batch: ForwardBatch): Array {
  const { hidden, present } = arch.body(params, batch);
  disposeCache(present);
  return lmLogits(arch, params, hidden);
}

/**
 * Hidden states of positions 0..T-2 flattened to [B·(T-1), D]: row b·(T-1)+t scores token t+1 of
 * row b (see nextTokenTargets).
 */
export function nextTokenHidden(arch: Architecture, params: Params, batch: ForwardBatch): Array {
  const [, t] = batch.inputIds.shape as [number, number];
  const { hidden, present } = arch.body(params, batch);
  disposeCache(present);
  return positionsOf(hidden, 0, t - 1);
}

/**
 * Positions [start, end) of every row of hidden [B, T, D] as one contiguous [B·(end−start), D],
 * by a gather: a slice of the time axis reshaped into rows is a view that jax-js's matmul reads
 * through div/mod index arithmetic, 20× slower than a stored operand (the LM head of an eval batch
 * of 4 × 128 at V = 50,257: 42 s instead of 2).
 */
export function positionsOf(hidden: Array, start: number, end: number): Array {
  const [b, t, d] = hidden.shape as [number, number, number];
  const rows = new Int32Array(b * (end - start));
  for (let r = 0; r < b; r++) for (let i = start; i < end; i++) rows[r * (end - start) + i - start] = r * t + i;
  return np.take(hidden.reshape([b * t, d]), np.array(rows, { dtype: np.int32 }), 0); // [B·(end−start), D]
}

/** The tokens those positions predict: ids[:, 1:] flattened to [B·(T-1)]. */
export function nextTokenTargets(inputIds: Array): Array {
  const [b, t] = inputIds.shape as [number, number];
  return inputIds.slice([], [1, t]).reshape([b * (t - 1)]);
}

/**
 * Per-position log-probabilities of the NEXT token: for t in 0..T-2, log p(ids[t+1] | ids[≤t]).
 * Returns [B, T-1]; position t of the result scores token t+1. The head runs in blocks (lm-head.ts).
 */
export function nextTokenLogprobs(arch: Architecture, params: Params, batch: ForwardBatch, options: HeadOptions = {}): Array {
  const [b, t] = batch.inputIds.shape as [number, number];
  const targets = nextTokenTargets(batch.inputIds.ref);
  const hidden = nextTokenHidden(arch, params, batch);
  return headForward(hidden, params[arch.lmHeadName]!.ref, targets, options).logprobs.reshape([b, t - 1]);
}

/**
 * Mean negative log-likelihood of the targets: logprobs [B, T-1] from nextTokenLogprobs, lossMask
 * [B, T] float32 marking which tokens are targets (prompt and padding are 0); position 0 is never a
 * target since nothing predicts it.
 */
export function maskedNll(logprobs: Array, lossMask: Array): Array {
  const [b, t] = lossMask.shape as [number, number];
  const weights = lossMask.slice([], [1, t]).reshape([b, t - 1]);
  const total = np.sum(logprobs.mul(weights.ref)).neg();
  return total.div(np.maximum(np.sum(weights), 1));
}

/** Mean cross-entropy over target tokens (see maskedNll), differentiable by autodiff. */
export function maskedLmLoss(arch: Architecture, params: Params, batch: ForwardBatch, lossMask: Array): Array {
  return maskedNll(nextTokenLogprobs(arch, params, batch), lossMask);
}

export function disposeCache(cache: { keys: Array[]; values: Array[] }): void {
  for (const a of cache.keys) a.dispose();
  for (const a of cache.values) a.dispose();
}
