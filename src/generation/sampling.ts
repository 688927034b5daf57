// Choosing the next token from logits on the host: temperature, top-k, top-p (nucleus), greedy.
import type { HostRng } from "../engine/random.ts";

export interface SamplingOptions {
  /** 0 means greedy (argmax). */
  temperature: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = off). */
  topP: number;
}

/** log-softmax of logits / temperature (temperature 0 is treated as 1: greedy reports raw log-probs). */
export function logSoftmax(logits: Float32Array, temperature: number): Float64Array {
  const t = temperature > 0 ? temperature : 1;
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x / t);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x / t - max);
  const logZ = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! / t - logZ;
  return out;
}

/** log Σ exp(x), without the array logSoftmax builds (greedy decoding needs one entry of it). */
function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  return max + Math.log(sum);
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * Samples a token id. Returns the id and its log-probability under the temperature-scaled
 * distribution before top-k/top-p filtering (what PPO's ratio is computed against).
 */
export function sampleToken(logits: Float32Array, options: SamplingOptions, rng: HostRng): { id: number; logprob: number } {
  if (options.temperature <= 0) {
    const id = argmax(logits);
    return { id, logprob: logits[id]! - logSumExp(logits) };
  }
  const logp = logSoftmax(logits, options.temperature);
  let candidates = Array.from(logp.keys());
  if (options.topK > 0 && options.topK < candidates.length) {
    candidates.sort((a, b) => logp[b]! - logp[a]!);
    candidates = candidates.slice(0, options.topK);
  }
  if (options.topP < 1) {
    candidates.sort((a, b) => logp[b]! - logp[a]!);
    let mass = 0;
    let keep = 0;
    while (keep < candidates.length && mass < options.topP) mass += Math.exp(logp[candidates[keep++]!]!);
    candidates = candidates.slice(0, Math.max(1, keep));
  }
  let total = 0;
  for (const i of candidates) total += Math.exp(logp[i]!);
  let u = rng.next() * total;
  for (const i of candidates) {
    u -= Math.exp(logp[i]!);
    if (u <= 0) return { id: i, logprob: logp[i]! };
  }
  const last = candidates[candidates.length - 1]!;
  return { id: last, logprob: logp[last]! };
}
