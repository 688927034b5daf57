// Kahneman-Tversky Optimisation (Ethayarajh et al. 2024), one function per TRL `loss_type`. Each
// example is one completion labelled desirable or undesirable; there are no pairs. With the
// policy's log-ratio r = log π(y|x) − log π_ref(y|x), KTO compares r with a reference point z₀,
// the policy's KL from the reference, estimated in the batch on mismatched prompt/completion pairs
// (prompt i, another example's completion), clamped at 0 and held constant:
//   desirable:   1 − σ(β(r − z₀))        undesirable:   1 − σ(β(z₀ − r))
// each weighted by desirable_weight or undesirable_weight, and averaged over the batch.
// Metrics are TRL's per-batch sums and counts (see METRICS.md).
import { lax, nn, np, type Array } from "../engine/runtime.ts";
import type { LossOutput } from "./loss.ts";

export type KtoLossType = "kto" | "apo_zero_unpaired";

/** TRL's KTO-specific KTOConfig fields, with TRL's defaults (the training ones: train/kto-config.ts). */
export interface KTOConfig {
  /** Strength of the implicit KL constraint: higher keeps the policy closer to the reference. */
  beta: number;
  loss_type: KtoLossType;
  /** Weight of the desirable examples' losses (raise it when they are the rarer kind). */
  desirable_weight: number;
  /** Weight of the undesirable examples' losses. */
  undesirable_weight: number;
}

export const defaultKTOConfig: KTOConfig = {
  beta: 0.1,
  loss_type: "kto",
  desirable_weight: 1,
  undesirable_weight: 1,
};

/** Sequence log-probs [B] of each example's completion, its label, and (KTO only) the mismatched completions'. */
export interface KtoLogps {
  policy: Array;
  reference: Array;
  /** [B] 1 for a desirable completion, 0 for an undesirable one. */
  labels: Array;
  /** log π(y′|x) [B]: prompt i with the mismatched completion y′ chosen for it. */
  policyKl?: Array;
  referenceKl?: Array;
}

type Weights = Pick<KTOConfig, "desirable_weight" | "undesirable_weight">;

/**
 * z₀ = max(0, mean(π_KL − ref_KL)), as a constant: KTO's reference point moves with the policy but
 * is not something the policy is trained to move (TRL computes it under no_grad and detaches it).
 */
export function ktoReferencePoint(policyKl: Array, referenceKl: Array): Array {
  return lax.stopGradient(np.maximum(np.mean(policyKl.sub(referenceKl)), 0));
}

/**
 * Per-example losses weighted by label → the batch mean, with the metrics every variant logs. The
 * implicit rewards β·r are summed per label (TRL logs sums and counts, so that means over a
 * logging window weigh every example once). Consumes `logps` and `kl`.
 */
function weightedLoss(
  logps: KtoLogps,
  beta: number,
  weights: Weights,
  kl: Array,
  losses: (ratio: Array) => { desirable: Array; undesirable: Array },
): LossOutput {
  const { policy, reference, labels } = logps;
  const ratio = policy.ref.sub(reference); // [B]
  const desirable = labels.ref; // [B] 1 / 0
  const undesirable = labels.mul(-1).add(1);
  const per = losses(ratio.ref);
  const perExample = per.desirable.mul(desirable.ref).mul(weights.desirable_weight).add(per.undesirable.mul(undesirable.ref).mul(weights.undesirable_weight));
  const rewards = lax.stopGradient(ratio.mul(beta));
  const metrics = {
    kl,
    "rewards/chosen_sum": np.sum(rewards.ref.mul(desirable.ref)),
    "rewards/rejected_sum": np.sum(rewards.mul(undesirable.ref)),
    "logps/chosen_sum": np.sum(policy.ref.mul(desirable.ref)),
    "logps/rejected_sum": np.sum(policy.mul(undesirable.ref)),
    "count/chosen": np.sum(desirable),
    "count/rejected": np.sum(undesirable),
  };
  return { loss: np.mean(perExample), metrics };
}

/** The KTO loss (the paper's eq. 7, TRL's loss_type "kto"); needs the mismatched completions' log-probs. */
export function ktoLoss(logps: KtoLogps, beta: number, weights: Weights): LossOutput {
  if (!logps.policyKl || !logps.referenceKl) throw new Error("ktoLoss: the KL reference point needs policyKl and referenceKl");
  const kl = ktoReferencePoint(logps.policyKl, logps.referenceKl);
  return weightedLoss(logps, beta, weights, kl.ref, (ratio) => ({
    desirable: nn.sigmoid(ratio.ref.sub(kl.ref).mul(beta)).mul(-1).add(1),
    undesirable: nn.sigmoid(kl.sub(ratio).mul(beta)).mul(-1).add(1),
  }));
}

/**
 * APO-zero, unpaired (D'Oosterlinck et al. 2024): KTO with z₀ = 0, for completions known to beat
 * the model's own: desirable ones pushed up, undesirable ones down, each on its own. Ignores
 * (and frees) policyKl / referenceKl; `kl` logs 0, as in TRL.
 */
export function apoZeroUnpairedLoss(logps: KtoLogps, beta: number, weights: Weights): LossOutput {
  logps.policyKl?.dispose();
  logps.referenceKl?.dispose();
  return weightedLoss(logps, beta, weights, np.zeros([]), (ratio) => ({
    desirable: nn.sigmoid(ratio.ref.mul(beta)).mul(-1).add(1),
    undesirable: nn.sigmoid(ratio.mul(beta)),
  }));
}

/** The variant a config names, so a trainer picks once instead of branching per step. */
export const ktoLosses: { [K in KtoLossType]: (logps: KtoLogps, config: Pick<KTOConfig, "beta"> & Weights) => LossOutput } = {
  kto: (logps, c) => ktoLoss(logps, c.beta, c),
  apo_zero_unpaired: (logps, c) => apoZeroUnpairedLoss(logps, c.beta, c),
};

/** Whether `loss_type` reads the mismatched (KL) completions; TRL's `calculate_KL`. */
export function ktoUsesKl(lossType: KtoLossType): boolean {
  return lossType === "kto";
}
