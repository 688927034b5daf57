// Reward modelling: the Bradley-Terry pairwise loss (as TRL's RewardTrainer computes it) and the
// expansion of a K-way human ranking into the pairs that loss trains on.
import { np, nn, type Array } from "../engine/runtime.ts";
import type { LossOutput } from "./loss.ts";

export interface RewardLossOptions {
  /** Per-pair margin [B] (TRL's `margin` dataset column): chosen must beat rejected by this much. */
  margin?: Array;
  centerRewardsCoefficient?: number | null;
}

/**
 * −mean log σ(r_c − r_r − margin) (+ coef · mean((r_c + r_r)²)), rewards [B] → scalar.
 * Metrics: `accuracy` (share of pairs with r_c > r_r strictly) and `margin` (mean r_c − r_r).
 * Consumes `chosen`, `rejected` and `margin`.
 */
export function rewardModelLoss(chosen: Array, rejected: Array, options: RewardLossOptions = {}): LossOutput {
  const diff = chosen.ref.sub(rejected.ref); // [B]
  const shifted = options.margin ? diff.ref.sub(options.margin) : diff.ref;
  let loss = np.mean(nn.logSigmoid(shifted)).neg();
  const coef = options.centerRewardsCoefficient;
  if (coef) loss = loss.add(np.mean(np.square(chosen.ref.add(rejected.ref))).mul(coef));
  const metrics = {
    accuracy: np.mean(chosen.greater(rejected).astype(np.float32)),
    margin: np.mean(diff),
  };
  return { loss, metrics };
}

export interface PreferencePair {
  chosen: number;
  rejected: number;
}

/**
 * All ordered (chosen, rejected) pairs implied by a ranking.
 *
 * `groups` lists the K responses best first as groups of response indices; responses in one group
 * are tied. `[[0], [2, 3], [1]]` says 0 beats everyone, 2 and 3 tie, and both beat 1. Every pair
 * across groups yields one preference, ties yield none, so K strictly ordered responses give
 * K(K−1)/2 pairs (the InstructGPT recipe, which trains on all of them together).
 */
export function expandRanking(groups: number[][]): PreferencePair[] {
  const seen = new Set<number>();
  for (const index of groups.flat()) {
    if (!Number.isInteger(index) || index < 0) throw new Error(`expandRanking: bad response index ${index}`);
    if (seen.has(index)) throw new Error(`expandRanking: response ${index} appears twice`);
    seen.add(index);
  }
  const pairs: PreferencePair[] = [];
  groups.forEach((better, i) => {
    for (const worse of groups.slice(i + 1)) {
      for (const chosen of better) for (const rejected of worse) pairs.push({ chosen, rejected });
    }
  });
  return pairs;
}

/**
 * Tie groups (best first) from the feedback app's answer format: every response in order, best
 * first, plus `ties` as pairs judged equal. Tied responses must be neighbours in `order`, or
 * chains of neighbours (a~b, b~c); a tie across an untied response contradicts the order.
 */
export function tieGroups<T>(order: T[], ties: [T, T][] = []): T[][] {
  const tied = (a: T, b: T) => ties.some(([x, y]) => (x === a && y === b) || (x === b && y === a));
  const groups: T[][] = [];
  for (const item of order) {
    const last = groups[groups.length - 1];
    if (last && last.some((other) => tied(item, other))) last.push(item);
    else groups.push([item]);
  }
  for (const [a, b] of ties) {
    const group = groups.find((g) => g.includes(a));
    if (!group || !group.includes(b)) throw new Error(`tieGroups: ${String(a)} and ${String(b)} are tied but not neighbours in the order`);
  }
  return groups;
}
