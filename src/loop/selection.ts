// Active selection: with a labeling budget, the labeler gets the comparisons the current reward
// model is least sure of, or a seeded random draw. How unsure is the `doubt` of each comparison:
// with `selection: uncertainty` the smallness of |r(a) − r(b)| (uncertainty sampling, as in
// Christiano et al. 2017's use of disagreement); with `selection: disagreement` and a reward-model
// ensemble, how much its members disagree about the preference, the std over members of their
// margins r_m(a) − r_m(b) (query by committee). Without a reward model yet (round 0) there is no
// doubt to go on, and the draw is random.
import { reduceEnsemble } from "../algorithms/ensemble-reward.ts";
import { HostRng } from "../engine/random.ts";

export const SELECTIONS = ["uncertainty", "disagreement", "random"] as const;
export type Selection = (typeof SELECTIONS)[number];

/** Indices of the comparisons for the labeler (in their original order): the `budget` of largest doubt, or a seeded draw when `doubt` is null. */
export function selectForLabeler(doubt: number[] | null, count: number, budget: number, seed: number): number[] {
  if (budget >= count) return Array.from({ length: count }, (_, i) => i);
  // Ties in doubt keep the original order, so the choice is deterministic.
  const order = doubt ? doubt.map((d, i) => [d, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, i]) => i) : new HostRng(seed).shuffle(Array.from({ length: count }, (_, i) => i));
  return order.slice(0, budget).sort((a, b) => a - b);
}

/** `selection: uncertainty`'s doubt: the smaller |margin|, the larger. */
export const marginDoubt = (margins: readonly number[]): number[] => margins.map((m) => -Math.abs(m));

/** `selection: disagreement`'s doubt: the std over the ensemble's members of each comparison's margin; `margins[m][i]` is member m's margin of comparison i. */
export function memberDisagreement(margins: readonly (readonly number[])[]): number[] {
  return reduceEnsemble(margins, { ensemble_reduce: "mean", uwo_lambda: 0 }).std;
}
