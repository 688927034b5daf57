// Forward passes and the causal-LM loss, as traced functions over (params, batch).
import { np, nn, type Array } from "../engine/runtime.ts";
import type { Architecture } from "./architecture.ts";
import { attentionBias, linear, pick } from "./layers.ts";
import type { ForwardBatch, Params } from "./types.ts";

/** Batch for a full (non-cached) pass; attentionMask [B, T] float32, 1 for real tokens. */
export function fullBatch(inputIds: Array, positionIds: Array, attentionMask: Array, inference = false): ForwardBatch {
  return { inputIds, positionIds, bias: attentionBias(attentionMask, inputIds.shape[1]!), inference };
}

export function lmLogits(arch: Architecture, params: Params, hidden: Array): Array {
  return linear(hidden, params[arch.lmHeadName]!.ref); // [B, T, V]
}

/** Logits for every position: [B, T, V]. */
export function causalLmForward(arch: Architecture, params: Params, batch: ForwardBatch): Array {
  const { hidden, present } = arch.body(params, batch);
  disposeCache(present);
  return lmLogits(arch, params, hidden);
}

/** log p(target) at each position from logits [B, T, V] and targets [B, T] int32 → [B, T]. */
export function tokenLogprobs(logits: Array, targets: Array): Array {
  return pick(nn.logSoftmax(logits, -1), targets);
}

/** Entropy of the next-token distribution at each position: [B, T]. */
export function tokenEntropy(logits: Array): Array {
  const logp = nn.logSoftmax(logits, -1);
  return np.sum(np.exp(logp.ref).mul(logp), -1).neg();
}

/**
 * Per-position log-probabilities of the NEXT token: for t in 0..T-2, log p(ids[t+1] | ids[≤t]).
 * Returns [B, T-1]; position t of the result scores token t+1.
 */
export function nextTokenLogprobs(logits: Array, inputIds: Array): Array {
  const [b, t] = inputIds.shape as [number, number];
  const v = logits.shape[2]!;
  const predicting = logits.slice([], [0, t - 1]).reshape([b, t - 1, v]);
  const targets = inputIds.slice([], [1, t]).reshape([b, t - 1]);
  return tokenLogprobs(predicting, targets);
}

/**
 * Mean cross-entropy over target tokens. lossMask [B, T] float32 marks which tokens are targets
 * (prompt and padding are 0); position 0 is never a target since nothing predicts it.
 */
export function maskedLmLoss(arch: Architecture, params: Params, batch: ForwardBatch, lossMask: Array): Array {
  const [b, t] = lossMask.shape as [number, number];
  const inputIds = batch.inputIds.ref;
  const logits = causalLmForward(arch, params, batch);
  const logp = nextTokenLogprobs(logits, inputIds); // [B, T-1]
  const weights = lossMask.slice([], [1, t]).reshape([b, t - 1]);
  const total = np.sum(logp.mul(weights.ref)).neg();
  return total.div(np.maximum(np.sum(weights), 1));
}

export function disposeCache(cache: { keys: Array[]; values: Array[] }): void {
  for (const a of cache.keys) a.dispose();
  for (const a of cache.values) a.dispose();
}
