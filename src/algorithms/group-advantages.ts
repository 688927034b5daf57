// Critic-free policy gradients over groups of completions of one prompt: GRPO (Shao et al. 2024,
// DeepSeekMath) and RLOO (Ahmadian et al. 2024). Each prompt gets `num_generations` completions;
// a completion's advantage is its reward against the others' in its group, so no value model.
// GRPO clips a ratio per token; RLOO, as in TRL's RLOOTrainer, treats a whole completion as one
// action and clips one ratio per completion.
// Rewards and advantages are flat [B] with the groups contiguous: completions g·G … g·G + G − 1
// belong to prompt g (TRL's GRPOTrainer and current RLOOTrainer layout).
import { np, type Array } from "../engine/runtime.ts";
import type { LossOutput } from "./loss.ts";
import { klPerToken } from "./kl.ts";
import { maskedMean } from "./sequence.ts";

/** TRL `loss_type`s: how per-token losses are averaged (see the loss functions below). */
export type GrpoLossType = "grpo" | "bnpo" | "dapo" | "dr_grpo";
/** How group-centred rewards are scaled: by the group's std, the whole batch's, or not at all. */
export type ScaleRewards = "group" | "batch" | "none";

/** TRL's GRPOConfig fields this project uses, with TRL's current defaults. */
export interface GRPOConfig {
  /** Completions sampled per prompt (G). */
  num_generations: number;
  /** Weight of the k3 KL penalty to the reference; 0 skips the reference model entirely. */
  beta: number;
  /** PPO-style clip range ε on the per-token ratio. */
  epsilon: number;
  loss_type: GrpoLossType;
  scale_rewards: ScaleRewards;
  /** Optimizer updates per generated batch (μ); above 1, ratios differ from 1. */
  num_iterations: number;
  temperature: number;
  max_completion_length: number;
  learning_rate: number;
}

export const defaultGRPOConfig: GRPOConfig = {
  num_generations: 8,
  beta: 0,
  epsilon: 0.2,
  loss_type: "dapo",
  scale_rewards: "group",
  num_iterations: 1,
  temperature: 1,
  max_completion_length: 256,
  learning_rate: 1e-6,
};

// ---- host: advantages ----

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

// ---- traced: losses ----

export interface GrpoLossInputs {
  /** Log-probs of the completion tokens under the policy being trained [B, T]. */
  logprobs: Array;
  /**
   * The same at generation time [B, T]. With num_iterations = 1 pass the policy's own log-probs
   * under `lax.stopGradient`: the ratio is then 1 but its gradient is ∇logp, as in TRL.
   */
  oldLogprobs: Array;
  /** The same under the reference model [B, T]; required when beta > 0. */
  refLogprobs?: Array;
  /** One advantage per completion [B]. */
  advantages: Array;
  mask: Array;
}

/**
 * Per-token loss −min(ratio·A, clip(ratio, 1 ± ε)·A) + β·k3 [B, T] and metrics under TRL's names:
 * `clip_ratio/low_mean` (ratio < 1−ε with A < 0), `clip_ratio/high_mean` (ratio > 1+ε with
 * A > 0), `clip_ratio/region_mean` (either) and, when β > 0, `kl` (mean k3). Consumes its inputs;
 * the mask comes back for the aggregation.
 */
function grpoPerTokenLoss(inputs: GrpoLossInputs, epsilon: number, beta: number): { perToken: Array; mask: Array; metrics: Record<string, Array> } {
  const { logprobs, oldLogprobs, refLogprobs, mask } = inputs;
  const advantages = inputs.advantages.reshape([inputs.advantages.shape[0]!, 1]); // [B, 1]
  const useKl = beta !== 0;
  const ratio = np.exp((useKl ? logprobs.ref : logprobs).sub(oldLogprobs)); // [B, T]
  const unclipped = ratio.ref.mul(advantages.ref);
  const clipped = np.clip(ratio.ref, 1 - epsilon, 1 + epsilon).mul(advantages.ref);
  let perToken = np.minimum(unclipped, clipped).neg();
  const low = ratio.ref.less(1 - epsilon).astype(np.float32).mul(advantages.ref.less(0).astype(np.float32));
  const high = ratio.greater(1 + epsilon).astype(np.float32).mul(advantages.greater(0).astype(np.float32));
  const metrics: Record<string, Array> = {
    "clip_ratio/low_mean": maskedMean(low.ref, mask.ref),
    "clip_ratio/high_mean": maskedMean(high.ref, mask.ref),
    "clip_ratio/region_mean": maskedMean(low.add(high), mask.ref),
  };
  if (useKl) {
    if (!refLogprobs) throw new Error("GRPO with beta > 0 needs refLogprobs");
    const kl = klPerToken.k3(logprobs, refLogprobs);
    metrics.kl = maskedMean(kl.ref, mask.ref);
    perToken = perToken.add(kl.mul(beta));
  }
  return { perToken, mask, metrics };
}

export interface GrpoLossOptions {
  epsilon: number;
  beta: number;
}

/**
 * loss_type "grpo" (the DeepSeekMath paper): mean over each completion's tokens, then over
 * completions, so a token of a short completion weighs more than one of a long completion.
 */
export function grpoLoss(inputs: GrpoLossInputs, options: GrpoLossOptions): LossOutput {
  const { perToken, mask, metrics } = grpoPerTokenLoss(inputs, options.epsilon, options.beta);
  return { loss: np.mean(maskedMean(perToken, mask, -1)), metrics };
}

/**
 * loss_type "bnpo" / "dapo" (DAPO's token-level loss, TRL's default): one mean over every valid
 * token of the batch, so every token weighs the same. TRL's "dapo" divides by the token count of
 * the whole accumulated batch; within one micro-batch that is this same mean.
 */
export function grpoTokenMeanLoss(inputs: GrpoLossInputs, options: GrpoLossOptions): LossOutput {
  const { perToken, mask, metrics } = grpoPerTokenLoss(inputs, options.epsilon, options.beta);
  return { loss: maskedMean(perToken, mask), metrics };
}

/**
 * loss_type "dr_grpo" (Liu et al. 2025, "Understanding R1-Zero-Like Training"): the sum over
 * valid tokens divided by a constant, B · max_completion_length, which removes the length bias.
 */
export function drGrpoLoss(inputs: GrpoLossInputs, options: GrpoLossOptions & { maxCompletionLength: number }): LossOutput {
  const batch = inputs.logprobs.shape[0]!;
  const { perToken, mask, metrics } = grpoPerTokenLoss(inputs, options.epsilon, options.beta);
  return { loss: np.sum(perToken.mul(mask)).div(batch * options.maxCompletionLength), metrics };
}

/** The aggregation a config names. */
export const grpoLosses: { [K in GrpoLossType]: (inputs: GrpoLossInputs, config: GRPOConfig) => LossOutput } = {
  grpo: (inputs, c) => grpoLoss(inputs, c),
  bnpo: (inputs, c) => grpoTokenMeanLoss(inputs, c),
  dapo: (inputs, c) => grpoTokenMeanLoss(inputs, c),
  dr_grpo: (inputs, c) => drGrpoLoss(inputs, { ...c, maxCompletionLength: c.max_completion_length }),
};

/**
 * RLOO's loss (TRL's RLOOTrainer): a completion is one action, so its log-probability is the sum
 * over its valid tokens and one ratio r = exp(Σ log π − Σ log π_old) is clipped per completion:
 * mean over completions of −min(r·A, clip(r, 1 ± ε)·A). The KL to the reference is already in the
 * reward (see rl/group-trainer.ts), so there is no KL term. Metrics: `clip_ratio/low_mean`,
 * `clip_ratio/high_mean`, `clip_ratio/region_mean` as shares of completions. Consumes its inputs.
 */
export function rlooLoss(inputs: GrpoLossInputs, options: { epsilon: number }): LossOutput {
  const { logprobs, oldLogprobs, advantages, mask } = inputs;
  inputs.refLogprobs?.dispose();
  const epsilon = options.epsilon;
  const logRatio = np.sum(logprobs.sub(oldLogprobs).mul(mask), -1); // [B]
  const ratio = np.exp(logRatio);
  const unclipped = ratio.ref.mul(advantages.ref);
  const clipped = np.clip(ratio.ref, 1 - epsilon, 1 + epsilon).mul(advantages.ref);
  const loss = np.mean(np.minimum(unclipped, clipped).neg());
  const low = ratio.ref.less(1 - epsilon).astype(np.float32).mul(advantages.ref.less(0).astype(np.float32));
  const high = ratio.greater(1 + epsilon).astype(np.float32).mul(advantages.greater(0).astype(np.float32));
  const metrics: Record<string, Array> = {
    "clip_ratio/low_mean": np.mean(low.ref),
    "clip_ratio/high_mean": np.mean(high.ref),
    "clip_ratio/region_mean": np.mean(low.add(high)),
  };
  return { loss, metrics };
}
