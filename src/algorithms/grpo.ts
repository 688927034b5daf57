// GRPO's policy losses: TRL's GRPOTrainer `loss_type`s, each a per-token objective followed by an
// aggregation over the micro-batch's tokens (TRL's `_compute_loss`; Shao et al. 2024 for grpo,
// Yu et al. 2025 (DAPO) for dapo and clip-higher, Liu et al. 2025 for dr_grpo, MiniMax-M1 /
// ScaleRL for cispo, Gao et al. 2025 (SAPO) for sapo, Zheng et al. 2025 (GSPO) for sequence-level
// importance sampling).
//
//   objective                                  aggregation
//   grpo    clipped ratio · A                  mean per completion, then over completions
//   bnpo    clipped ratio · A                  mean over the micro-batch's valid tokens
//   dapo    clipped ratio · A                  Σ over valid tokens / tokens of the accumulated batch
//   dr_grpo clipped ratio · A                  Σ over valid tokens / (B · max_completion_length)
//   cispo   sg(min(ratio, ε_high)) · A · log π  as dapo
//   sapo    σ(τ(ratio − 1)) · 4/τ · A           as grpo
//
// The ratio is π/π_old per token or, with importance_sampling_level "sequence", one per completion:
// exp of the mean of its per-token log-ratios. Rollouts from another engine (llama.cpp) multiply
// each token's objective by a truncated importance weight, as TRL's GRPOTrainer does for vLLM.
// β·k3 to the reference is added per token.
// All traced functions consume their array arguments (see sequence.ts).
import { lax, nn, np, type Array } from "../engine/runtime.ts";
import type { LossOutput } from "./loss.ts";
import type { ScaleRewards } from "./group-advantages.ts";
import { klPerToken } from "./kl.ts";
import { maskedMean, maskedSum } from "./sequence.ts";

export type GrpoLossType = "grpo" | "dr_grpo" | "dapo" | "bnpo" | "cispo" | "sapo";
/** One ratio per token (PPO, GRPO) or per completion (GSPO). */
export type ImportanceSamplingLevel = "token" | "sequence";

/** TRL's GRPOConfig fields this project uses, with TRL's current defaults. */
export interface GRPOConfig {
  /** Completions sampled per prompt (G). */
  num_generations: number;
  /** Weight of the k3 KL penalty to the reference; 0 skips the reference model entirely. */
  beta: number;
  /** Clip range: the ratio is clipped to [1 − ε, 1 + ε_high]. */
  epsilon: number;
  /**
   * Upper clip ε_high (DAPO's clip-higher; null = epsilon). For cispo it caps the ratio itself
   * (ratio ≤ ε_high); null there means 5, see `epsilonHigh`.
   */
  epsilon_high: number | null;
  loss_type: GrpoLossType;
  importance_sampling_level: ImportanceSamplingLevel;
  /** sapo's gate temperature τ for tokens with a positive advantage. */
  sapo_temperature_pos: number;
  /** sapo's τ for the others (a steeper gate: negative updates are damped sooner). */
  sapo_temperature_neg: number;
  scale_rewards: ScaleRewards;
  /** Completions cut off at max_completion_length (no EOS) leave the loss; they keep their place in the advantages. */
  mask_truncated_completions: boolean;
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
  epsilon_high: null,
  loss_type: "dapo",
  importance_sampling_level: "token",
  sapo_temperature_pos: 1,
  sapo_temperature_neg: 1.05,
  scale_rewards: "group",
  mask_truncated_completions: false,
  num_iterations: 1,
  temperature: 1,
  max_completion_length: 256,
  learning_rate: 1e-6,
};

/**
 * cispo's cap on the ratio when epsilon_high is unset: the value TRL's documentation recommends
 * for cispo (its ScaleRL recipe). TRL's generic fallback, epsilon (0.2), would cap every ratio
 * far below 1 and turn cispo into REINFORCE scaled by 0.2.
 */
export const CISPO_EPSILON_HIGH = 5;

/** The upper clip (or, for cispo, the ratio cap) a config asks for. */
export function epsilonHigh(c: Pick<GRPOConfig, "epsilon" | "epsilon_high" | "loss_type">): number {
  return c.epsilon_high ?? (c.loss_type === "cispo" ? CISPO_EPSILON_HIGH : c.epsilon);
}

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
  /** [B, T] 1 for the tokens in the loss (mask_truncated_completions zeroes whole rows). */
  mask: Array;
  /**
   * Scalar divisor of dapo's and cispo's summed loss: TRL's num_items_in_batch (completion tokens
   * of the whole accumulated batch, truncated completions included) divided by the number of
   * micro-batches, because TrainStep averages the micro-batches' gradients. Absent = this
   * micro-batch's own valid-token count.
   */
  tokenNormalizer?: Array;
  /**
   * Truncated importance weights of a rollout sampled by another engine (TRL's
   * vllm_importance_sampling_correction): [B, T] per token, or [B, 1] per completion (RLOO).
   * Constants that multiply each token's objective before the KL term and the aggregation.
   */
  importanceWeights?: Array;
}

/** One loss_type: traced, consumes its inputs. */
export type GrpoLoss = (inputs: GrpoLossInputs, config: GRPOConfig) => LossOutput;

// ---- per-token objectives ----

interface TokenTerms {
  /** π/π_old [B, T], or [B, 1] at the sequence level. */
  ratio: Array;
  /** [B, 1] */
  advantages: Array;
  /** log π [B, T] */
  logprobs: Array;
  mask: Array;
  level: ImportanceSamplingLevel;
}

type Objective = (t: TokenTerms, c: GRPOConfig) => { perToken: Array; metrics: Record<string, Array> };

const float = (condition: Array) => condition.astype(np.float32);

/** TRL's masked_batch_mean: a share of valid tokens, or at the sequence level of completions. */
function share(indicator: Array, mask: Array, level: ImportanceSamplingLevel): Array {
  if (level === "token") return maskedMean(indicator, mask);
  mask.dispose();
  return np.mean(indicator);
}

/**
 * −min(ratio·A, clip(ratio, 1 − ε, 1 + ε_high)·A), PPO's pessimistic bound. Metrics:
 * `clip_ratio/low_mean` (ratio < 1 − ε with A < 0), `clip_ratio/high_mean` (ratio > 1 + ε_high
 * with A > 0), `clip_ratio/region_mean` (either).
 */
const clipped: Objective = ({ ratio, advantages: a, logprobs, mask, level }, c) => {
  logprobs.dispose();
  const [low, high] = [1 - c.epsilon, 1 + epsilonHigh(c)];
  const perToken = np.minimum(ratio.ref.mul(a.ref), np.clip(ratio.ref, low, high).mul(a.ref)).neg();
  const lowClipped = float(ratio.ref.less(low)).mul(float(a.ref.less(0)));
  const highClipped = float(ratio.greater(high)).mul(float(a.greater(0)));
  const metrics = {
    "clip_ratio/low_mean": share(lowClipped.ref, mask.ref, level),
    "clip_ratio/high_mean": share(highClipped.ref, mask.ref, level),
    "clip_ratio/region_mean": share(lowClipped.add(highClipped), mask, level),
  };
  return { perToken, metrics };
};

/**
 * cispo: −sg(min(ratio, ε_high))·A·log π. The capped ratio is a constant weight on REINFORCE's
 * gradient, so no token's gradient is ever zeroed (PPO's clip drops clipped tokens entirely).
 * Metric `cispo_clip_ratio`: share of tokens with ratio > ε_high and A > 0.
 */
const cispo: Objective = ({ ratio, advantages: a, logprobs, mask, level }, c) => {
  const cap = epsilonHigh(c);
  const weight = lax.stopGradient(np.minimum(ratio.ref, cap));
  const perToken = weight.mul(a.ref).mul(logprobs).neg();
  const capped = float(ratio.greater(cap)).mul(float(a.greater(0)));
  return { perToken, metrics: { cispo_clip_ratio: share(capped, mask, level) } };
};

/**
 * sapo: −σ(τ·(ratio − 1))·4/τ·A, a soft gate in place of the clip (its slope at ratio 1 is 1, so
 * on-policy it is plain GRPO), τ = sapo_temperature_pos where A > 0, sapo_temperature_neg
 * elsewhere. TRL logs no clipping metric for it; neither does this.
 */
const sapo: Objective = ({ ratio, advantages: a, logprobs, mask }, c) => {
  logprobs.dispose();
  mask.dispose();
  const [pos, neg] = [c.sapo_temperature_pos, c.sapo_temperature_neg];
  const tau = float(a.ref.greater(0)).mul(pos - neg).add(neg); // [B, 1]
  const gate = nn.sigmoid(tau.ref.mul(ratio.sub(1))).mul(4).div(tau);
  return { perToken: gate.mul(a).neg(), metrics: {} };
};

interface PerTokenLoss {
  /** [B, T], or [B, 1] for sapo at the sequence level without a KL term (broadcast by the mask). */
  perToken: Array;
  mask: Array;
  tokenNormalizer?: Array;
  metrics: Record<string, Array>;
}

/** The ratio, the objective, and β·k3 (metric `kl`, its mean over valid tokens) per token. */
function perTokenLoss(inputs: GrpoLossInputs, c: GRPOConfig, objective: Objective): PerTokenLoss {
  const { logprobs, oldLogprobs, refLogprobs, mask, tokenNormalizer, importanceWeights } = inputs;
  const batch = logprobs.shape[0]!;
  const logRatio = logprobs.ref.sub(oldLogprobs); // [B, T]
  const level = c.importance_sampling_level;
  // GSPO: the mean log-ratio over the completion's valid tokens (0 for an empty row).
  const logWeight = level === "token" ? logRatio : maskedMean(logRatio, mask.ref, -1).reshape([batch, 1]);
  const terms = { ratio: np.exp(logWeight), advantages: inputs.advantages.reshape([batch, 1]), logprobs: logprobs.ref, mask: mask.ref, level };
  let { perToken, metrics } = objective(terms, c);
  // Where TRL applies the vLLM correction: on the objective of every loss_type (and at either
  // importance_sampling_level, the weight staying per token), never on the KL penalty.
  if (importanceWeights) perToken = perToken.mul(importanceWeights);
  if (c.beta !== 0) {
    if (!refLogprobs) throw new Error("GRPO with beta > 0 needs refLogprobs");
    const kl = klPerToken.k3(logprobs, refLogprobs);
    metrics = { ...metrics, kl: maskedMean(kl.ref, mask.ref) };
    perToken = perToken.add(kl.mul(c.beta));
  } else {
    logprobs.dispose();
    refLogprobs?.dispose();
  }
  return { perToken, mask, metrics, ...(tokenNormalizer ? { tokenNormalizer } : {}) };
}

// ---- aggregations ----

/** grpo, sapo: mean over each completion's tokens, then over completions (TRL counts empty rows as 0). */
function meanPerCompletion({ perToken, mask, tokenNormalizer, metrics }: PerTokenLoss): LossOutput {
  tokenNormalizer?.dispose();
  return { loss: np.mean(maskedMean(perToken, mask, -1)), metrics };
}

/** bnpo: mean over the micro-batch's valid tokens. */
function meanOverTokens({ perToken, mask, tokenNormalizer, metrics }: PerTokenLoss): LossOutput {
  tokenNormalizer?.dispose();
  return { loss: maskedMean(perToken, mask), metrics };
}

/** dr_grpo: Σ over valid tokens / (B · max_completion_length), a constant, so no length bias. */
function sumOverConstant({ perToken, mask, tokenNormalizer, metrics }: PerTokenLoss, maxCompletionLength: number): LossOutput {
  tokenNormalizer?.dispose();
  const batch = mask.shape[0]!;
  return { loss: maskedSum(perToken, mask).div(batch * maxCompletionLength), metrics };
}

/** dapo, cispo: Σ over valid tokens / the accumulated batch's tokens (see `tokenNormalizer`). */
function meanOverAccumulatedTokens({ perToken, mask, tokenNormalizer, metrics }: PerTokenLoss): LossOutput {
  return { loss: tokenNormalizer ? maskedSum(perToken, mask).div(tokenNormalizer) : maskedMean(perToken, mask), metrics };
}

/** Every loss_type, by name (typed: a loss_type without a loss does not compile). */
export const grpoLosses: { [K in GrpoLossType]: GrpoLoss } = {
  grpo: (i, c) => meanPerCompletion(perTokenLoss(i, c, clipped)),
  bnpo: (i, c) => meanOverTokens(perTokenLoss(i, c, clipped)),
  dapo: (i, c) => meanOverAccumulatedTokens(perTokenLoss(i, c, clipped)),
  dr_grpo: (i, c) => sumOverConstant(perTokenLoss(i, c, clipped), c.max_completion_length),
  cispo: (i, c) => meanOverAccumulatedTokens(perTokenLoss(i, c, cispo)),
  sapo: (i, c) => meanPerCompletion(perTokenLoss(i, c, sapo)),
};

