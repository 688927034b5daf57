// What a reward model's scores look like on its own training data, saved beside it as
// reward_stats.json when `rlhf rm train` finishes (or by `rlhf rm stats` for an older model): the
// range an RL run's scores can be compared with, since a score far outside it is one the model
// never learned to give (the reward-range monitor, rl/monitors/reward-range.ts).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";
import { InputError } from "../io/errors.ts";

export const REWARD_STATS_FILE = "reward_stats.json";

/** The percentiles recorded: the tails the monitor reads and enough of the middle to picture the spread. */
export const STATS_PERCENTILES = [0, 1, 5, 25, 50, 75, 95, 99, 100] as const;

export interface RewardStats {
  /** What was scored: the data file and which records of it. */
  data: string;
  split: "train" | "all";
  /** Responses scored (chosen and rejected alike: every response the model was trained on). */
  count: number;
  mean: number;
  std: number;
  /** "p1" → the 1st percentile of the scores, …, "p0" and "p100" the extremes; linear interpolation between order statistics (numpy's default). */
  percentiles: Record<string, number>;
  /** A reward-model ensemble's (reward-ensemble.ts): the same summary of the members' std of each response; the rest is of their mean score. */
  ensemble_std?: Pick<RewardStats, "mean" | "std" | "percentiles">;
}

export function rewardStats(scores: readonly number[], data: string, split: RewardStats["split"]): RewardStats {
  if (scores.length === 0) throw new InputError(`${data}: no responses to score for the reward statistics`);
  const sorted = Float64Array.from(scores).sort();
  const n = sorted.length;
  const mean = sorted.reduce((a, x) => a + x, 0) / n;
  const std = Math.sqrt(sorted.reduce((a, x) => a + (x - mean) ** 2, 0) / n);
  const quantile = (q: number) => {
    const pos = q * (n - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(n - 1, lo + 1);
    return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
  };
  return { data, split, count: n, mean, std, percentiles: Object.fromEntries(STATS_PERCENTILES.map((p) => [`p${p}`, quantile(p / 100)])) };
}

export function writeRewardStats(modelDir: string, stats: RewardStats): Promise<void> {
  return writeFileAtomic(join(modelDir, REWARD_STATS_FILE), JSON.stringify(stats, null, 2) + "\n");
}

/** The statistics saved beside a reward model, or null when it has none. */
export function readRewardStats(modelDir: string): RewardStats | null {
  const path = join(modelDir, REWARD_STATS_FILE);
  if (!existsSync(path)) return null;
  const stats = JSON.parse(readFileSync(path, "utf8")) as RewardStats;
  for (const p of ["p1", "p99"]) if (typeof stats.percentiles?.[p] !== "number") throw new InputError(`${path}: percentiles.${p} missing (expected the file \`rlhf rm stats\` writes)`);
  return stats;
}
