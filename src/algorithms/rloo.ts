// RLOO's policy loss (Ahmadian et al. 2024; TRL's RLOOTrainer). A completion is one action: its
// log-probability is the sum over its valid tokens, and one ratio per completion is clipped.
import { np } from "../engine/runtime.ts";
import type { LossOutput } from "./loss.ts";
import type { GrpoLossInputs } from "./grpo.ts";

/**
 * Mean over completions of −min(r·A, clip(r, 1 − ε, 1 + ε_high)·A) with
 * r = exp(Σ log π − Σ log π_old) over the completion's valid tokens. A completion whose mask is
 * all zero (mask_truncated_completions) has r = 1 and no gradient, but still counts in the mean,
 * as in TRL. The KL to the reference is already in the reward (see rl/group-trainer.ts), so there
 * is no KL term. Metrics: `clip_ratio/low_mean`, `clip_ratio/high_mean`, `clip_ratio/region_mean`
 * as shares of completions. With `importanceWeights` ([B, 1], a rollout from another engine) each
 * completion's term is multiplied by its weight. Consumes its inputs.
 */
export function rlooLoss(inputs: GrpoLossInputs, options: { epsilon: number; epsilonHigh: number }): LossOutput {
  const { logprobs, oldLogprobs, advantages, mask } = inputs;
  inputs.refLogprobs?.dispose();
  inputs.tokenNormalizer?.dispose();
  const [low, high] = [1 - options.epsilon, 1 + options.epsilonHigh];
  const logRatio = np.sum(logprobs.sub(oldLogprobs).mul(mask), -1); // [B]
  const ratio = np.exp(logRatio);
  const unclipped = ratio.ref.mul(advantages.ref);
  const clipped = np.clip(ratio.ref, low, high).mul(advantages.ref);
  const perCompletion = np.minimum(unclipped, clipped).neg(); // [B]
  // A rollout from another engine: one truncated weight per completion, as the ratio is one per completion.
  const loss = np.mean(inputs.importanceWeights ? perCompletion.mul(inputs.importanceWeights.reshape([perCompletion.shape[0]!])) : perCompletion);
  const lowClipped = ratio.ref.less(low).astype(np.float32).mul(advantages.ref.less(0).astype(np.float32));
  const highClipped = ratio.greater(high).astype(np.float32).mul(advantages.greater(0).astype(np.float32));
  const metrics = {
    "clip_ratio/low_mean": np.mean(lowClipped.ref),
    "clip_ratio/high_mean": np.mean(highClipped.ref),
    "clip_ratio/region_mean": np.mean(lowClipped.add(highClipped)),
  };
  return { loss, metrics };
}
