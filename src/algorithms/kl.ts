// Per-token KL(π ‖ π_ref) estimators from sampled tokens, and the controllers that set the KL
// penalty's weight. Estimators follow Schulman, "Approximating KL Divergence" (2020), with
// log r = logp_ref − logp for a token sampled from π:
//   k1 = −log r = logp − logp_ref          unbiased, high variance, can be negative
//   k2 = ½ (log r)²                         biased, low variance, ≥ 0 (TRL logs it, never trains on it)
//   k3 = (r − 1) − log r                    unbiased, low variance, ≥ 0 (GRPO's penalty)
import { np, type Array } from "../engine/runtime.ts";

export type KlEstimator = "k1" | "k2" | "k3";

/** Traced per-token estimators: logp, logpRef [...] → [...]; both arguments are consumed. */
export const klPerToken: { [K in KlEstimator]: (logp: Array, refLogp: Array) => Array } = {
  k1: (logp, refLogp) => logp.sub(refLogp),
  k2: (logp, refLogp) => np.square(logp.sub(refLogp)).mul(0.5),
  k3: (logp, refLogp) => {
    const logRatio = refLogp.sub(logp); // log r
    return np.exp(logRatio.ref).sub(1).sub(logRatio);
  },
};

/** Host per-token estimators on single numbers (PPO's rewards are assembled on the host). */
export const klPerTokenHost: { [K in KlEstimator]: (logp: number, refLogp: number) => number } = {
  k1: (logp, refLogp) => logp - refLogp,
  k2: (logp, refLogp) => 0.5 * (logp - refLogp) ** 2,
  // expm1 keeps k3 accurate (and ≥ 0) when the two log-probs are close.
  k3: (logp, refLogp) => Math.expm1(refLogp - logp) - (refLogp - logp),
};

// ---- controllers (host side: they run once per rollout, outside any gradient) ----

export type KlControllerState =
  | { kind: "fixed"; value: number }
  | { kind: "adaptive"; value: number; target: number; horizon: number };

export interface KlController {
  /** The current KL coefficient (TRL's `kl_coef`, β in Ziegler et al.). */
  readonly value: number;
  /** Feeds the KL measured on the last rollout, which covered `nSteps` samples. */
  update(currentKl: number, nSteps: number): void;
  /** Plain JSON, restorable with `klControllerFromState`. */
  state(): KlControllerState;
}

export class FixedKLController implements KlController {
  constructor(readonly value: number) {}
  update(_currentKl: number, _nSteps: number): void {}
  state(): KlControllerState {
    return { kind: "fixed", value: this.value };
  }
}

/**
 * Ziegler et al. (2019) §2.2 / TRL's `AdaptiveKLController`: moves β so the measured KL tracks
 * `target`, proportionally to the relative error clipped to ±0.2, at a pace set by `horizon`:
 * β ← β · (1 + clip(KL/target − 1, −0.2, 0.2) · nSteps / horizon).
 */
export class AdaptiveKLController implements KlController {
  #value: number;
  constructor(initKlCoef: number, readonly target: number, readonly horizon: number) {
    if (!(target > 0) || !(horizon > 0)) throw new Error("AdaptiveKLController: target and horizon must be positive");
    this.#value = initKlCoef;
  }
  get value(): number {
    return this.#value;
  }
  update(currentKl: number, nSteps: number): void {
    const error = Math.min(0.2, Math.max(-0.2, currentKl / this.target - 1));
    this.#value *= 1 + (error * nSteps) / this.horizon;
  }
  state(): KlControllerState {
    return { kind: "adaptive", value: this.#value, target: this.target, horizon: this.horizon };
  }
}

export function klControllerFromState(state: KlControllerState): KlController {
  switch (state.kind) {
    case "fixed":
      return new FixedKLController(state.value);
    case "adaptive":
      return new AdaptiveKLController(state.value, state.target, state.horizon);
  }
}
