// Per-token quantities of packed sequences (see sequences.ts), as traced functions: response-token
// log-probs and entropies (policy, reference), per-token values and last-token scores (value and
// reward models, which carry transformers' `score.weight` head).
import { np, nn, type Array } from "../engine/runtime.ts";
import type { Architecture } from "../models/architecture.ts";
import { SCORE_HEAD } from "../models/architecture.ts";
import { fullBatch, lmLogits } from "../models/forward.ts";
import { pick } from "../models/layers.ts";
import type { Params } from "../models/types.ts";
import type { DeviceSequences } from "./sequences.ts";

/**
 * log p(response token) under the model with logits divided by `temperature` (as sampled), for the
 * R response columns: [B, R]; and the entropy of each of those next-token distributions.
 */
export function responseLogprobs(
  arch: Architecture,
  params: Params,
  s: DeviceSequences,
  promptLength: number,
  temperature: number,
  inference: boolean,
): { logprobs: Array; entropy: Array } {
  const [b, t] = s.ids.shape as [number, number];
  const r = t - promptLength;
  const { hidden } = arch.body(params, fullBatch(s.ids.ref, s.positions, s.attention, inference));
  // Position P-1+i predicts response token i.
  const predicting = hidden.slice([], [promptLength - 1, t - 1]).reshape([b, r, arch.hiddenSize]);
  const logits = lmLogits(arch, params, predicting).mul(1 / (temperature > 0 ? temperature : 1));
  const logp = nn.logSoftmax(logits, -1); // [B, R, V]
  const targets = s.ids.slice([], [promptLength, t]).reshape([b, r]);
  const entropy = np.sum(np.exp(logp.ref).mul(logp.ref), -1).neg();
  return { logprobs: pick(logp, targets), entropy };
}

/** hidden · score.weight for every position: [B, T]. */
export function tokenScores(arch: Architecture, params: Params, s: DeviceSequences, inference: boolean): Array {
  const { hidden } = arch.body(params, fullBatch(s.ids, s.positions, s.attention, inference));
  const head = params[SCORE_HEAD]!.ref; // [1, D]
  const [b, t] = hidden.shape as [number, number];
  return np.matmul(hidden, head.transpose()).reshape([b, t]);
}

/** Value of the state before each response token (the column that predicts it): [B, R]. */
export function responseValues(arch: Architecture, params: Params, s: DeviceSequences, promptLength: number, inference: boolean): Array {
  const scores = tokenScores(arch, params, s, inference);
  const [b, t] = scores.shape as [number, number];
  return scores.slice([], [promptLength - 1, t - 1]).reshape([b, t - promptLength]);
}

/** The reward model's score at each row's last real token: [B]. */
export function lastTokenScore(arch: Architecture, params: Params, s: DeviceSequences, inference: boolean): Array {
  return np.sum(tokenScores(arch, params, s, inference).mul(s.lastToken), -1);
}
