// PPO for language models as TRL's PPOTrainer runs it (Ouyang et al. 2022; Huang et al., "The N+
// Implementation Details of RLHF with PPO", 2024). One rollout is a batch of right-padded
// responses [B, T] with a mask (1 = response token). Host side: per-token rewards (KL penalty plus
// the reward model's score at the last token), GAE, whitening. Traced: the clipped policy and value
// losses a trainer differentiates.
import { np, type Array } from "../engine/runtime.ts";
import type { LossOutput } from "./loss.ts";
import { klPerTokenHost } from "./kl.ts";
import { maskedMean, maskedWhiten, type Rows } from "./sequence.ts";

/** TRL's PPOConfig (and OnPolicyConfig) fields this project uses, with TRL's defaults. */
export interface PPOConfig {
  /** Passes over each rollout. */
  num_ppo_epochs: number;
  /** Mini-batches each pass is split into. */
  num_mini_batches: number;
  /** ε of the clipped policy objective: the ratio π/π_old is held in [1−ε, 1+ε]. */
  cliprange: number;
  /** ε_v: new value predictions are held within ±ε_v of the rollout's. */
  cliprange_value: number;
  /** Weight of the value loss in the total loss. */
  vf_coef: number;
  /** Discount factor of GAE; 1 because an episode is one short response. */
  gamma: number;
  /** GAE's λ: 0 is one-step TD, 1 is Monte Carlo. */
  lam: number;
  /** Weight of the per-token KL penalty in the reward. */
  kl_coef: number;
  /** KL estimator in the reward; TRL refuses "k2", which it only logs. */
  kl_estimator: "k1" | "k3";
  /** Whiten the per-token rewards before GAE (keeping their mean). */
  whiten_rewards: boolean;
  /** Subtracted from the score of responses that never produced EOS; null = no penalty. */
  missing_eos_penalty: number | null;
  /** Sampling temperature of rollouts; logits are divided by it when scoring too. */
  temperature: number;
  /** Maximum new tokens per response. */
  response_length: number;
  learning_rate: number;
}

export const defaultPPOConfig: PPOConfig = {
  num_ppo_epochs: 4,
  num_mini_batches: 1,
  cliprange: 0.2,
  cliprange_value: 0.2,
  vf_coef: 0.1,
  gamma: 1,
  lam: 0.95,
  kl_coef: 0.05,
  kl_estimator: "k1",
  whiten_rewards: false,
  missing_eos_penalty: null,
  temperature: 0.7,
  response_length: 53,
  learning_rate: 3e-6,
};

// ---- host: rewards and advantages ----

/** Index of the last response token in each row; the mask must be a non-empty prefix. */
export function lastTokenIndices(mask: Rows): number[] {
  return mask.map((row, b) => {
    const length = row.findIndex((m) => !m);
    const n = length === -1 ? row.length : length;
    if (row.slice(n).some((m) => m)) throw new Error(`row ${b}: the mask must be a prefix (right padding only)`);
    if (n === 0) throw new Error(`row ${b} has no response tokens`);
    return n - 1;
  });
}

export interface PpoRewardInputs {
  /** Log-probs of the sampled tokens under the rollout policy [B, T]. */
  logprobs: Rows;
  /** The same under the reference model [B, T]. */
  refLogprobs: Rows;
  mask: Rows;
  /** Reward-model scores [B], one per response. */
  scores: number[];
  /** Whether each response produced EOS; needed when `missing_eos_penalty` is set. */
  containsEos?: boolean[];
}

export interface PpoRewards {
  /** Per-token reward: −kl_coef·KL, plus the score at the last token [B, T]; 0 on padding. */
  rewards: Rows;
  /** Per-token KL estimate [B, T]; 0 on padding. */
  kl: Rows;
  /** −kl_coef·KL [B, T]. */
  nonScoreReward: Rows;
  /** Scores after the missing-EOS penalty [B]. */
  scores: number[];
}

/**
 * Per-token rewards of a rollout. The score goes on the last response token, where the reward
 * model read the whole response. (TRL puts it one position later, on the first padding token,
 * which its value mask keeps; here rewards, values and losses all use the response mask.)
 */
export function ppoRewards(inputs: PpoRewardInputs, config: Pick<PPOConfig, "kl_coef" | "kl_estimator" | "missing_eos_penalty">): PpoRewards {
  const { logprobs, refLogprobs, mask } = inputs;
  const last = lastTokenIndices(mask);
  const estimate = klPerTokenHost[config.kl_estimator];
  const scores = inputs.scores.map((s, b) => {
    if (config.missing_eos_penalty === null) return s;
    if (!inputs.containsEos) throw new Error("ppoRewards: missing_eos_penalty needs containsEos");
    return inputs.containsEos[b] ? s : s - config.missing_eos_penalty;
  });
  const kl = logprobs.map((row, b) => row.map((lp, t) => (mask[b]![t] ? estimate(lp, refLogprobs[b]![t]!) : 0)));
  const nonScoreReward = kl.map((row, b) => row.map((k, t) => (mask[b]![t] ? -config.kl_coef * k : 0)));
  const rewards = nonScoreReward.map((row, b) => row.map((r, t) => (t === last[b] ? r + scores[b]! : r)));
  return { rewards, kl, nonScoreReward, scores };
}

/**
 * Generalised advantage estimation (Schulman et al. 2016) per row, backwards in time:
 *   δ_t = r_t + γ V_{t+1} − V_t,   A_t = δ_t + γλ A_{t+1},   R_t = A_t + V_t
 * with V = 0 after the last response token (the episode ends there). Padding gets A = R = 0.
 */
export function gae(rewards: Rows, values: Rows, mask: Rows, gamma: number, lam: number): { advantages: Rows; returns: Rows } {
  const last = lastTokenIndices(mask);
  const advantages = rewards.map((row) => row.map(() => 0));
  const returns = rewards.map((row) => row.map(() => 0));
  rewards.forEach((row, b) => {
    let next = 0; // A_{t+1}
    for (let t = last[b]!; t >= 0; t--) {
      const nextValue = t < last[b]! ? values[b]![t + 1]! : 0;
      const delta = row[t]! + gamma * nextValue - values[b]![t]!;
      next = delta + gamma * lam * next;
      advantages[b]![t] = next;
      returns[b]![t] = next + values[b]![t]!;
    }
  });
  return { advantages, returns };
}

/**
 * Rewards → (whitened) advantages and value targets, in TRL's order: optional reward whitening
 * (mean kept), GAE, then advantage whitening over all valid tokens (mean removed).
 */
export function ppoAdvantages(rewards: Rows, values: Rows, mask: Rows, config: Pick<PPOConfig, "gamma" | "lam" | "whiten_rewards">): { advantages: Rows; returns: Rows } {
  const shaped = config.whiten_rewards ? maskedWhiten(rewards, mask, false) : rewards;
  const { advantages, returns } = gae(shaped, values, mask, config.gamma, config.lam);
  return { advantages: maskedWhiten(advantages, mask), returns };
}

/**
 * Rollout-level metrics under TRL's names (sums over tokens, means over responses).
 * `entropy` holds the policy's exact next-token entropy at each response token, so
 * `objective/entropy` is the exact entropy of a response (TRL logs the one-sample estimate −Σ log π
 * of the same quantity; the exact value has less variance).
 */
export function ppoRolloutMetrics(r: PpoRewards, entropy: Rows, mask: Rows, containsEos: boolean[]): Record<string, number> {
  const meanOfRowSums = (rows: Rows) => rows.reduce((acc, row, b) => acc + row.reduce((s, v, t) => s + (mask[b]![t] ? v : 0), 0), 0) / rows.length;
  const nonScore = meanOfRowSums(r.nonScoreReward);
  const scores = r.scores.reduce((a, s) => a + s, 0) / r.scores.length;
  return {
    "objective/kl": meanOfRowSums(r.kl),
    "objective/entropy": meanOfRowSums(entropy),
    "objective/non_score_reward": nonScore,
    "objective/rlhf_reward": nonScore + scores,
    "objective/scores": scores,
    "val/num_eos_tokens": containsEos.filter(Boolean).length,
  };
}

// ---- traced: losses ----

export interface PpoPolicyInputs {
  /** Log-probs of the rollout's tokens under the policy being trained [B, T]. */
  logprobs: Array;
  /** The same, recorded at rollout time [B, T]. */
  oldLogprobs: Array;
  /** Whitened advantages [B, T]. */
  advantages: Array;
  mask: Array;
  /**
   * Truncated importance sampling [B, T] (TRL's vllm_importance_sampling_correction): each token's
   * min(π_old / π_sampler, cap) when another engine sampled the rollout, a constant the loss is
   * multiplied by per token; absent, 1.
   */
  importanceWeights?: Array;
}

/**
 * The clipped surrogate (Schulman et al. 2017), as a loss: with ratio = exp(logp − logp_old),
 * mean over valid tokens of w·max(−A·ratio, −A·clip(ratio, 1−ε, 1+ε)), w the importance weight
 * (1 without one). Consumes its inputs.
 */
export function ppoPolicyLoss(inputs: PpoPolicyInputs, cliprange: number): LossOutput {
  const { logprobs, oldLogprobs, advantages, mask, importanceWeights } = inputs;
  const logRatio = logprobs.sub(oldLogprobs); // [B, T]
  const ratio = np.exp(logRatio.ref);
  const unclipped = advantages.ref.neg().mul(ratio.ref);
  const clipped = advantages.neg().mul(np.clip(ratio.ref, 1 - cliprange, 1 + cliprange));
  const perToken = np.maximum(unclipped.ref, clipped.ref); // [B, T]
  const loss = maskedMean(importanceWeights ? perToken.mul(importanceWeights) : perToken, mask.ref);
  const metrics = {
    "loss/policy_avg": loss.ref,
    "policy/clipfrac_avg": maskedMean(clipped.greater(unclipped).astype(np.float32), mask.ref),
    "policy/approxkl_avg": maskedMean(np.square(logRatio).mul(0.5), mask.ref),
    "val/ratio": maskedMean(ratio, mask),
  };
  return { loss, metrics };
}

export interface PpoValueInputs {
  /** Value predictions of the model being trained [B, T]. */
  values: Array;
  /** Value predictions recorded at rollout time [B, T]. */
  oldValues: Array;
  /** GAE returns, the regression targets [B, T]. */
  returns: Array;
  mask: Array;
}

/**
 * Clipped value loss: ½ · mean over valid tokens of max((v − R)², (clip(v, v_old ± ε_v) − R)²),
 * so one update cannot move a value estimate far from the rollout's. Consumes its inputs.
 */
export function ppoValueLoss(inputs: PpoValueInputs, cliprangeValue: number): LossOutput {
  const { values, oldValues, returns, mask } = inputs;
  const clippedValues = np.clip(values.ref, oldValues.ref.sub(cliprangeValue), oldValues.add(cliprangeValue));
  const unclipped = np.square(values.sub(returns.ref));
  const clipped = np.square(clippedValues.sub(returns));
  const loss = maskedMean(np.maximum(unclipped.ref, clipped.ref), mask.ref).mul(0.5);
  const metrics = {
    "loss/value_avg": loss.ref,
    "val/clipfrac_avg": maskedMean(clipped.greater(unclipped).astype(np.float32), mask),
  };
  return { loss, metrics };
}

/** Policy loss + vf_coef · value loss over one mini-batch; metrics of both. Consumes its inputs. */
export function ppoLoss(
  inputs: PpoPolicyInputs & Omit<PpoValueInputs, "mask">,
  config: Pick<PPOConfig, "cliprange" | "cliprange_value" | "vf_coef">,
): LossOutput {
  const policy = ppoPolicyLoss({ ...inputs, mask: inputs.mask.ref }, config.cliprange);
  const value = ppoValueLoss({ values: inputs.values, oldValues: inputs.oldValues, returns: inputs.returns, mask: inputs.mask }, config.cliprange_value);
  return { loss: policy.loss.add(value.loss.mul(config.vf_coef)), metrics: { ...policy.metrics, ...value.metrics } };
}
