// Direct Preference Optimisation (Rafailov et al. 2023) and its variants, one function per TRL
// `loss_type`. Every variant reads the same four sequence log-probs [B]:
//   h = (π_c − π_r) − (ref_c − ref_r)
// the policy's log-odds of chosen over rejected, measured against the reference model's.
// Each returns the batch-mean loss and the same metrics (see METRICS.md).
import { np, nn, type Array } from "../engine/runtime.ts";
import type { LossOutput } from "./loss.ts";

export type DpoLossType = "sigmoid" | "robust" | "hinge" | "ipo";

/** Sequence log-probs [B] of the chosen and rejected completions under policy and reference. */
export interface DpoLogps {
  policyChosen: Array;
  policyRejected: Array;
  refChosen: Array;
  refRejected: Array;
}

/**
 * h [B] and the metrics every variant logs. The implicit rewards β(π − ref) are the DPO paper's
 * r̂; `rewards/accuracies` counts pairs where the chosen one's is strictly higher. Consumes `logps`.
 */
function logRatiosAndMetrics(logps: DpoLogps, beta: number): { h: Array; metrics: Record<string, Array> } {
  const { policyChosen, policyRejected, refChosen, refRejected } = logps;
  const chosenRatio = policyChosen.ref.sub(refChosen); // [B]
  const rejectedRatio = policyRejected.ref.sub(refRejected); // [B]
  const h = chosenRatio.ref.sub(rejectedRatio.ref);
  const chosenRewards = chosenRatio.mul(beta);
  const rejectedRewards = rejectedRatio.mul(beta);
  const metrics = {
    "rewards/chosen": np.mean(chosenRewards.ref),
    "rewards/rejected": np.mean(rejectedRewards.ref),
    "rewards/accuracies": np.mean(chosenRewards.ref.greater(rejectedRewards.ref).astype(np.float32)),
    "rewards/margins": np.mean(chosenRewards.sub(rejectedRewards)),
    "logps/chosen": np.mean(policyChosen),
    "logps/rejected": np.mean(policyRejected),
  };
  return { h, metrics };
}

/**
 * The original DPO loss, −log σ(βh), with conservative label smoothing (cDPO, Mitchell 2023):
 * −(1−ε) log σ(βh) − ε log σ(−βh). Sequence log-probs are sums over completion tokens.
 */
export function dpoSigmoidLoss(logps: DpoLogps, beta: number, labelSmoothing = 0): LossOutput {
  const { h, metrics } = logRatiosAndMetrics(logps, beta);
  const z = h.mul(beta);
  let losses = nn.logSigmoid(z.ref).mul(-(1 - labelSmoothing));
  if (labelSmoothing !== 0) losses = losses.sub(nn.logSigmoid(z.neg()).mul(labelSmoothing));
  return { loss: np.mean(losses), metrics };
}

/**
 * Robust DPO (Chowdhury et al. 2024): an unbiased loss under labels flipped with probability ε,
 * (−(1−ε) log σ(βh) + ε log σ(−βh)) / (1 − 2ε). Needs ε < ½.
 */
export function dpoRobustLoss(logps: DpoLogps, beta: number, labelSmoothing: number): LossOutput {
  if (!(labelSmoothing >= 0 && labelSmoothing < 0.5)) throw new Error("dpoRobustLoss: label_smoothing must be in [0, 0.5)");
  const { h, metrics } = logRatiosAndMetrics(logps, beta);
  const z = h.mul(beta);
  const losses = nn.logSigmoid(z.ref).mul(-(1 - labelSmoothing)).add(nn.logSigmoid(z.neg()).mul(labelSmoothing));
  return { loss: np.mean(losses).div(1 - 2 * labelSmoothing), metrics };
}

/** SLiC's hinge loss (Zhao et al. 2023) as TRL writes it: relu(1 − βh), β acting as 1/margin. */
export function dpoHingeLoss(logps: DpoLogps, beta: number): LossOutput {
  const { h, metrics } = logRatiosAndMetrics(logps, beta);
  return { loss: np.mean(nn.relu(h.mul(-beta).add(1))), metrics };
}

/**
 * IPO (Azar et al. 2023): (h − 1/(2β))², regressing the log-odds to a fixed target instead of
 * pushing them to infinity. Expects LENGTH-AVERAGED log-probs (`averageSequenceLogps`), as TRL
 * feeds IPO; with sums, long completions would dominate h.
 */
export function dpoIpoLoss(logps: DpoLogps, beta: number): LossOutput {
  const { h, metrics } = logRatiosAndMetrics(logps, beta);
  return { loss: np.mean(np.square(h.sub(1 / (2 * beta)))), metrics };
}

/**
 * RPO's term (Pang et al. 2024; TRL's rpo_alpha): the chosen completions' negative log-likelihood,
 * the mean over all their tokens in the batch (TRL's cross-entropy over the chosen rows), from their
 * sequence log-probs [B] (sums over tokens) and token counts [B].
 */
export function chosenNll(chosenLogps: Array, chosenTokens: Array): Array {
  return np.sum(chosenLogps).neg().div(np.sum(chosenTokens));
}

/** The variant a config names, so a trainer picks once instead of branching per step. */
export const dpoLosses: { [K in DpoLossType]: (logps: DpoLogps, config: { beta: number; label_smoothing: number }) => LossOutput } = {
  sigmoid: (logps, c) => dpoSigmoidLoss(logps, c.beta, c.label_smoothing),
  robust: (logps, c) => dpoRobustLoss(logps, c.beta, c.label_smoothing),
  hinge: (logps, c) => dpoHingeLoss(logps, c.beta),
  ipo: (logps, c) => dpoIpoLoss(logps, c.beta),
};

/** Whether `loss_type` wants length-averaged sequence log-probs rather than sums. */
export function dpoUsesAverageLogps(lossType: DpoLossType): boolean {
  return lossType === "ipo";
}
