// Per-token quantities of packed sequences (see sequences.ts), as traced functions: response-token
// log-probs and entropies (policy, reference), per-token values and last-token scores (value and
// reward models, which carry transformers' `score.weight` head).
import { np, type Array } from "../engine/runtime.ts";
import type { Architecture } from "../models/architecture.ts";
import { SCORE_HEAD } from "../models/architecture.ts";
import { disposeCache, fullBatch, positionsOf, withDropoutKey } from "../models/forward.ts";
import { headLogprobsAndEntropy } from "../models/lm-head.ts";
import type { Params } from "../models/types.ts";
import type { DeviceSequences } from "./sequences.ts";

/**
 * Hidden states of the positions that predict the R response tokens, flattened to [B·R, D]:
 * position P-1+i predicts response token i. `rng`: a training pass's dropout key.
 */
export function responseHidden(arch: Architecture, params: Params, s: Pick<DeviceSequences, "ids" | "positions" | "attention">, promptLength: number, rng?: Array): Array {
  const t = s.ids.shape[1]!;
  const { hidden, present } = arch.body(params, withDropoutKey(fullBatch(s.ids, s.positions, s.attention), rng));
  disposeCache(present);
  return positionsOf(hidden, promptLength - 1, t - 1);
}

/** The response tokens those positions predict, flattened to [B·R]. */
export function responseTargets(ids: Array, promptLength: number): Array {
  const [b, t] = ids.shape as [number, number];
  return ids.slice([], [promptLength, t]).reshape([b * (t - promptLength)]);
}

/**
 * log p(response token) under the model with logits divided by `temperature` (as sampled), for the
 * R response columns: [B, R]; and the entropy of each of those next-token distributions. No gradient.
 */
export function responseLogprobs(arch: Architecture, params: Params, s: DeviceSequences, promptLength: number, temperature: number): { logprobs: Array; entropy: Array } {
  const { logprobs, entropy } = responseLogprobsAt(arch, params, s, promptLength, [temperature]);
  return { logprobs: logprobs[0]!, entropy };
}

/**
 * The same at several temperatures from one pass of the model ([B, R] each, in order), with the
 * entropies at the first.
 */
export function responseLogprobsAt(arch: Architecture, params: Params, s: DeviceSequences, promptLength: number, temperatures: number[]): { logprobs: Array[]; entropy: Array } {
  const [b, t] = s.ids.shape as [number, number];
  const r = t - promptLength;
  const targets = responseTargets(s.ids.ref, promptLength);
  const hidden = responseHidden(arch, params, s, promptLength);
  const outs = temperatures.map((temperature) => headLogprobsAndEntropy(hidden.ref, params[arch.lmHeadName]!.ref, targets.ref, { temperature: temperature > 0 ? temperature : 1 }));
  hidden.dispose();
  targets.dispose();
  outs.slice(1).forEach((o) => o.entropy.dispose());
  return { logprobs: outs.map((o) => o.logprobs.reshape([b, r])), entropy: outs[0]!.entropy.reshape([b, r]) };
}

/** hidden · score.weight for every position: [B, T]. */
export function tokenScores(arch: Architecture, params: Params, s: Pick<DeviceSequences, "ids" | "positions" | "attention">): Array {
  const { hidden, present } = arch.body(params, fullBatch(s.ids, s.positions, s.attention));
  disposeCache(present);
  const head = params[SCORE_HEAD]!.ref; // [1, D]
  const [b, t] = hidden.shape as [number, number];
  return np.matmul(hidden, head.transpose()).reshape([b, t]);
}

/** Value of the state before each response token (the column that predicts it): [B, R]. */
export function responseValues(arch: Architecture, params: Params, s: Pick<DeviceSequences, "ids" | "positions" | "attention">, promptLength: number): Array {
  const scores = tokenScores(arch, params, s);
  const [b, t] = scores.shape as [number, number];
  return scores.slice([], [promptLength - 1, t - 1]).reshape([b, t - promptLength]);
}

/** The reward model's score at each row's last real token: [B]. */
export function lastTokenScore(arch: Architecture, params: Params, s: DeviceSequences): Array {
  return np.sum(tokenScores(arch, params, s).mul(s.lastToken), -1);
}
