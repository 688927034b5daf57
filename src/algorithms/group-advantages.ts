// Advantages of the critic-free group methods, GRPO (Shao et al. 2024, DeepSeekMath) and RLOO
// (Ahmadian et al. 2024): each prompt gets `num_generations` completions, and a completion's
// advantage is its reward against the others' in its group, so no value model. Host code, once per
// generated batch; the losses are in grpo.ts and rloo.ts.
// Rewards and advantages are flat [B] with the groups contiguous: completions g·G … g·G + G − 1
// belong to prompt g (TRL's GRPOTrainer and current RLOOTrainer layout).

/** How group-centred rewards are scaled: by the group's std, the whole batch's, or not at all. */
export type ScaleRewards = "group" | "batch" | "none";

function groupsOf(rewards: number[], numGenerations: number): number[][] {
  if (!Number.isInteger(numGenerations) || numGenerations < 2) throw new Error("group advantages need at least 2 generations per prompt");
  if (rewards.length % numGenerations !== 0) throw new Error(`${rewards.length} rewards do not split into groups of ${numGenerations}`);
  const groups: number[][] = [];
  for (let start = 0; start < rewards.length; start += numGenerations) groups.push(rewards.slice(start, start + numGenerations));
  return groups;
}

const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
/** Bessel-corrected, like torch's `std` which TRL calls. */
const std = (xs: number[]) => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};

/**
 * GRPO advantages: (r − mean of its group) / (std + 1e-4), the std taken per group ("group"), over
 * the whole batch ("batch"), or skipped ("none", Dr. GRPO's advice: per-group std up-weights
 * prompts that are nearly always solved or always failed).
 */
export function grpoAdvantages(rewards: number[], numGenerations: number, scaleRewards: ScaleRewards = "group"): number[] {
  const groups = groupsOf(rewards, numGenerations);
  const batchStd = std(rewards);
  return groups.flatMap((group) => {
    const m = mean(group);
    const scale = scaleRewards === "group" ? std(group) + 1e-4 : scaleRewards === "batch" ? batchStd + 1e-4 : 1;
    return group.map((r) => (r - m) / scale);
  });
}

/** RLOO advantages: r_i − mean of the other G − 1 rewards in its group (leave-one-out baseline). */
export function rlooAdvantages(rewards: number[], numGenerations: number): number[] {
  return groupsOf(rewards, numGenerations).flatMap((group) => {
    const total = group.reduce((a, r) => a + r, 0);
    return group.map((r) => r - (total - r) / (group.length - 1));
  });
}

/**
 * TRL's RLOO `normalize_advantages`: the whole generation batch's advantages to mean 0 and std 1
 * (Bessel, + 1e-4 as TRL adds).
 */
export function normalizeAdvantages(advantages: number[]): number[] {
  const m = mean(advantages);
  const s = std(advantages) + 1e-4;
  return advantages.map((a) => (a - m) / s);
}
