// Masked reductions shared by the losses. Two halves:
//  - traced (device arrays, usable inside `compile`/`valueAndGrad`): every function CONSUMES its
//    array arguments, as jax-js ops do; callers pass `.ref` for values they use again.
//  - host (plain `number[][]`, one row per sequence): for computations outside the gradient
//    (advantages, whitening, logging), where readable loops beat array gymnastics.
// A mask is 1 for a real token and 0 for padding; [B, T] throughout.
import { np, type Array } from "../engine/runtime.ts";

// ---- traced ----

/** Σ x·mask over `axis` (all axes when omitted). */
export function maskedSum(x: Array, mask: Array, axis?: number): Array {
  return np.sum(x.mul(mask), axis);
}

/**
 * Σ x·mask / Σ mask over `axis` (all axes when omitted). The count is clamped to 1 so an empty
 * row gives 0, not NaN (TRL clamps the same way in its GRPO losses).
 */
export function maskedMean(x: Array, mask: Array, axis?: number): Array {
  const total = np.sum(x.mul(mask.ref), axis);
  return total.div(np.maximum(np.sum(mask, axis), 1));
}

/** Sequence log-probability: Σ_t logp[b, t] over the mask → [B] (DPO's default input). */
export function sequenceLogps(tokenLogps: Array, mask: Array): Array {
  return maskedSum(tokenLogps, mask, -1);
}

/** Length-normalised sequence log-probability: mean over the mask → [B] (what TRL feeds IPO). */
export function averageSequenceLogps(tokenLogps: Array, mask: Array): Array {
  return maskedMean(tokenLogps, mask, -1);
}

// ---- host ----

export type Rows = number[][];

function checkShapes(values: Rows, mask: Rows, who: string): void {
  if (values.length !== mask.length || values.some((row, b) => row.length !== mask[b]!.length)) {
    throw new Error(`${who}: values and mask differ in shape`);
  }
}

/** Mean of the valid entries; throws on an empty mask, which always signals a caller bug here. */
export function maskedMeanHost(values: Rows, mask: Rows): number {
  checkShapes(values, mask, "maskedMeanHost");
  let sum = 0;
  let count = 0;
  values.forEach((row, b) => row.forEach((v, t) => {
    if (mask[b]![t]) {
      sum += v;
      count++;
    }
  }));
  if (count === 0) throw new Error("maskedMeanHost: the mask is empty");
  return sum / count;
}

/**
 * Variance of the valid entries, Bessel-corrected by default like TRL's `masked_var` (which
 * refuses a single valid entry for the same reason: the correction divides by n − 1).
 */
export function maskedVarHost(values: Rows, mask: Rows, unbiased = true): number {
  const mean = maskedMeanHost(values, mask);
  const centered = values.map((row) => row.map((v) => (v - mean) ** 2));
  const variance = maskedMeanHost(centered, mask);
  if (!unbiased) return variance;
  const n = mask.flat().filter((m) => m).length;
  if (n < 2) throw new Error("maskedVarHost: an unbiased variance needs at least two valid entries");
  return (variance * n) / (n - 1);
}

/**
 * TRL's `masked_whiten`: (x − mean) / sqrt(var + 1e-8) over the valid entries, with the mean added
 * back when `shiftMean` is false (rewards are whitened that way so their sign survives). Padding
 * comes out as 0, which is what every caller here wants (TRL fills it with 0 right after).
 */
export function maskedWhiten(values: Rows, mask: Rows, shiftMean = true): Rows {
  const mean = maskedMeanHost(values, mask);
  const scale = 1 / Math.sqrt(maskedVarHost(values, mask) + 1e-8);
  return values.map((row, b) => row.map((v, t) => (mask[b]![t] ? (v - mean) * scale + (shiftMean ? 0 : mean) : 0)));
}
