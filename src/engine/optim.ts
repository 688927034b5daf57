// Optimizers as {init, update} pairs over explicit state (the optax shape), written with traced
// operations so a whole training step, update included, compiles into one program.
import { np, type Array } from "./runtime.ts";

/** Named parameters, keyed by Hugging Face parameter names. */
export type Params = Record<string, Array>;

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (Loshchilov & Hutter), applied as torch.optim.AdamW does. */
  weightDecay: number;
  /** Which parameters decay; HF's Trainer exempts biases and norm weights. Default: all. */
  decays?: (name: string) => boolean;
}

export interface AdamWState {
  mu: Params;
  nu: Params;
}

/**
 * Per-step scalars computed on the host and passed in as arrays, so that a changing learning rate
 * or step count never forces a recompile: lr, and the bias corrections 1-β1^t and 1-β2^t.
 */
export interface StepScalars {
  lr: Array;
  biasCorrection1: Array;
  biasCorrection2: Array;
}

export function stepScalars(config: AdamWConfig, step: number, lr: number): { lr: number; biasCorrection1: number; biasCorrection2: number } {
  return { lr, biasCorrection1: 1 - config.beta1 ** step, biasCorrection2: 1 - config.beta2 ** step };
}

export function adamw(config: AdamWConfig) {
  const decays = config.decays ?? (() => true);
  return {
    init(params: Params): AdamWState {
      const mu: Params = {};
      const nu: Params = {};
      for (const [name, p] of Object.entries(params)) {
        mu[name] = np.zerosLike(p.ref);
        nu[name] = np.zerosLike(p.ref);
      }
      return { mu, nu };
    },
    /** Returns the new parameters and state. Traced code: references are taken where reused. */
    update(grads: Params, state: AdamWState, params: Params, s: StepScalars): { params: Params; state: AdamWState } {
      const next: Params = {};
      const mu: Params = {};
      const nu: Params = {};
      for (const name of Object.keys(params)) {
        const g = grads[name]!;
        let p = params[name]!;
        if (config.weightDecay !== 0 && decays(name)) {
          p = p.ref.sub(p.ref.mul(s.lr.ref.mul(config.weightDecay)));
        }
        const m = state.mu[name]!.mul(config.beta1).add(g.ref.mul(1 - config.beta1));
        const v = state.nu[name]!.mul(config.beta2).add(g.ref.mul(g).mul(1 - config.beta2));
        const denom = np.sqrt(v.ref.div(s.biasCorrection2.ref)).add(config.eps);
        const step = m.ref.div(s.biasCorrection1.ref).div(denom).mul(s.lr.ref);
        next[name] = p.sub(step);
        mu[name] = m;
        nu[name] = v;
      }
      return { params: next, state: { mu, nu } };
    },
  };
}

/** Global L2 norm of a gradient tree (traced). */
export function globalNorm(grads: Params): Array {
  let total: Array | null = null;
  for (const g of Object.values(grads)) {
    const sq = np.sum(np.square(g.ref));
    total = total === null ? sq : total.add(sq);
  }
  return np.sqrt(total ?? np.zeros([]));
}

/**
 * Scales gradients so their global norm is at most maxNorm, as torch.nn.utils.clip_grad_norm_ does
 * (coefficient maxNorm / (norm + 1e-6), capped at 1). Returns the norm before clipping.
 */
export function clipByGlobalNorm(grads: Params, maxNorm: number): { grads: Params; norm: Array } {
  const norm = globalNorm(grads);
  const coef = np.minimum(np.divide(maxNorm, norm.ref.add(1e-6)), 1);
  const clipped: Params = {};
  for (const [name, g] of Object.entries(grads)) clipped[name] = g.mul(coef.ref);
  return { grads: clipped, norm };
}
