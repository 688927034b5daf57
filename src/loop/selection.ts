// Active selection: with a labeling budget, the labeler gets the comparisons the current reward
// model is least sure of, the smallest |r(a) − r(b)| (uncertainty sampling, as in Christiano et
// al. 2017's use of disagreement), or a seeded random draw. Without a reward model yet (round 0)
// uncertainty has nothing to go on and draws at random.
import { HostRng } from "../engine/random.ts";

/** Indices of the comparisons for the labeler (in their original order); the others are the rest. */
export function selectForLabeler(margins: number[] | null, count: number, budget: number, mode: "uncertainty" | "random", seed: number): number[] {
  if (budget >= count) return Array.from({ length: count }, (_, i) => i);
  let order: number[];
  if (mode === "uncertainty" && margins) {
    // Ties in |margin| keep the original order, so the choice is deterministic.
    order = margins.map((m, i) => [Math.abs(m), i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, i]) => i);
  } else {
    order = new HostRng(seed).shuffle(Array.from({ length: count }, (_, i) => i));
  }
  return order.slice(0, budget).sort((a, b) => a - b);
}
