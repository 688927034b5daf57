// The reward model scoring outside the range it saw on its own training data: a policy that found
// inputs the reward model was never trained on, where its score means nothing (out of
// distribution). The range is reward_stats.json's 1st–99th percentile of its training responses.
import type { RewardStats } from "../../train/reward-stats.ts";
import { fmt, type Monitor } from "./monitor.ts";

/** The share of the step's scores outside the training data's [p1, p99]: fires above `share`. */
export function rewardOutOfRange(share: number, stats: RewardStats): Monitor {
  const [low, high] = [stats.percentiles.p1!, stats.percentiles.p99!];
  return {
    name: "reward_ood",
    observe(current) {
      const scores = current.scores;
      if (scores.length === 0) return null;
      const above = scores.filter((s) => s > high).length;
      const below = scores.filter((s) => s < low).length;
      const value = (above + below) / scores.length;
      if (value <= share) return null;
      return {
        value,
        threshold: share,
        message: `${fmt(100 * value)}% of the step's scores (${above} above, ${below} below) are outside [${fmt(low)}, ${fmt(high)}], the 1st-99th percentile of the reward model's training responses`,
      };
    },
  };
}
