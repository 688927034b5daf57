// One optimizer step for any loss: value-and-gradient, optional gradient accumulation over
// micro-batches, clipping by global norm, AdamW. With one micro-batch everything is one compiled
// program; with several, gradients are summed on the device between two compiled halves.
// Only the trainable parameters get gradients: frozen ones (a LoRA adapter's base) are differentiated
// along with them inside the compiled program, whose compiler then drops their unused gradients
// (a frozen weight closed over by the differentiated function instead would keep about its own
// size again in the backward pass's saved values); no clipping term or Adam moment of theirs exists.
// A loss that reads its rows only through one value per row (DPO, KTO) may have them differentiated
// in parts, one after another, so that one part's activations exist at a time (RowValues).
import { np, random, tree, valueAndGrad, vjp, type Array } from "../engine/runtime.ts";
import { compile, compileConsuming, fromHost, keep, toNumber } from "../engine/arrays.ts";
import { adamw, clipByGlobalNorm, globalNorm, stepScalars, type AdamWConfig, type AdamWState, type Params } from "../engine/optim.ts";
import { headBackward, headForward } from "../models/lm-head.ts";
import type { LossOutput } from "../algorithms/loss.ts";


/**
 * A traced loss over parameters and a batch (a tree of arrays). `rng`, a PRNG key, is given in
 * training passes that have randomness (LoRA's dropout); a loss that uses none ignores it.
 */
export type LossFn<B> = (params: Params, batch: B, rng?: Array) => LossOutput;

/**
 * A loss that reads the language-model head only through log p(target) at some positions (SFT,
 * DPO, the policy losses of PPO and GRPO). The step then runs the head in blocks with its
 * hand-written backward (models/lm-head.ts), so no [tokens, vocabulary] tensor is ever whole and
 * none is kept for the backward pass. Each group of positions has its own temperature.
 */
export interface HeadLoss<B, X = Record<string, Array>> {
  /** Parameter name of the head matrix [V, D] (the embedding when tied). */
  headWeight: string;
  /** Logits are divided by these, one per group of positions (1 = plain). */
  temperatures: number[];
  /** Differentiable in params: per group, the hidden states [N, D] whose next token is scored; and any other outputs the loss needs. `rng` as LossFn's. */
  body(params: Params, batch: B, rng?: Array): { hidden: Array[]; extra: X };
  /** Per group, the scored token ids [N] int32. */
  targets(batch: B): Array[];
  /** Differentiable in `logprobs` (per group, [N]) and `extra`. */
  loss(logprobs: Array[], extra: X, batch: B): LossOutput;
  /** Set when the loss reads the rows only through one value per row: then `loss` is `rowValues.loss(rowValues.values(logprobs, batch), batch)`. */
  rowValues?: RowValues<B>;
}

/**
 * A HeadLoss that reads a batch's rows only through one value per row (a completion's sequence
 * log-prob: DPO's chosen and rejected rows, KTO's completions and KL rows). The step may then
 * differentiate the rows in parts, each part's forward and backward pass before the next part's, so
 * that one part's activations exist at a time instead of the batch's (TrainStepConfig.rowParts).
 */
export interface RowValues<B> {
  /**
   * The batch's rows as consecutive parts of `rows` rows. A `constant` part's values reach the loss
   * only as constants (KTO's KL rows, under stop_gradient): its rows are never differentiated. The
   * first part is not constant.
   */
  parts(batch: B): { rows: number; constant?: boolean }[];
  /** Rows [from, to) of a batch, for `body`, `targets` and `values`. */
  rows(batch: B, from: number, to: number): B;
  /** One value per row [R] from the rows' log-probs (per group, as `loss` gets them). */
  values(logprobs: Array[], batch: B): Array;
  /** The loss from every row's value [R], in row order. */
  loss(values: Array, batch: B): LossOutput;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function isHeadLoss<B>(loss: LossFn<B> | HeadLoss<B, any>): loss is HeadLoss<B, any> {
  return typeof loss !== "function";
}

/** The loss value of a HeadLoss without gradients (evaluation, tests). Traced. */
export function headLossValue<B, X>(spec: HeadLoss<B, X>, params: Params, batch: B, budget?: number): LossOutput {
  const { hidden, extra } = spec.body(tree.ref(params), tree.ref(batch));
  const targets = spec.targets(tree.ref(batch));
  const weight = params[spec.headWeight]!;
  const logprobs = hidden.map((h, i) => headForward(h, weight.ref, targets[i]!, { temperature: spec.temperatures[i]!, budget }).logprobs);
  return spec.loss(logprobs, extra, batch);
}

/** What a pass reads besides the trained parameters and the batch: the frozen parameters, and the pass's PRNG key if it has one. */
export interface PassInputs {
  frozen: Params;
  rng?: Array;
}

type ValueAndGrad<B> = (params: Params, batch: B, pass?: PassInputs) => [[Array, Record<string, Array>], Params];

/**
 * `[[loss, metrics], gradients]` of either kind of loss, as the step computes them: the loss sees
 * `{...pass.frozen, ...params}`, the gradients cover `params` only; with `rowParts`, a HeadLoss's rows
 * in the parts its RowValues gives, one after another. Traced.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function lossAndGradients<B>(loss: LossFn<B> | HeadLoss<B, any>, headBudget?: number, rowParts = false): ValueAndGrad<B> {
  if (!isHeadLoss(loss)) {
    if (rowParts) throw new Error("lossAndGradients: rowParts needs a HeadLoss with rowValues");
    return autodiffGrad(loss);
  }
  if (!rowParts) return headGrad(loss, headBudget);
  if (!loss.rowValues) throw new Error("lossAndGradients: rowParts needs a HeadLoss with rowValues");
  return rowPartsGrad(loss, loss.rowValues, headBudget);
}

/**
 * The gradients of `trained` out of those of every parameter the pass read: the frozen ones'
 * are disposed, so that the compiled program never computes them.
 */
function trainedOnly(grads: Params, trained: Params): Params {
  const kept: Params = {};
  for (const [name, g] of Object.entries(grads)) {
    if (name in trained) kept[name] = g;
    else g.dispose();
  }
  return kept;
}

/** Loss, metrics and gradients of a plain loss, by autodiff (valueAndGrad differentiates its first argument only). */
function autodiffGrad<B>(lossFn: LossFn<B>): ValueAndGrad<B> {
  // The key travels in a tree that has no entry without one (an argument may not be undefined).
  const lossWithAux = (p: Params, b: B, key: { rng?: Array }) => {
    const out = lossFn(p, b, key.rng);
    return [out.loss, out.metrics] as [Array, Record<string, Array>];
  };
  const vg = valueAndGrad(lossWithAux, { hasAux: true }) as unknown as (p: Params, b: B, key: { rng?: Array }) => [[Array, Record<string, Array>], Params];
  return (params, batch, pass = { frozen: {} }) => {
    const [out, grads] = vg({ ...pass.frozen, ...params }, batch, pass.rng ? { rng: pass.rng } : {});
    return [out, trainedOnly(grads, params)];
  };
}

/**
 * Loss, metrics and gradients of a HeadLoss: autodiff for the body (vjp) and for the loss as a
 * function of the log-probs, the head's own backward in between.
 */
function headGrad<B, X>(spec: HeadLoss<B, X>, budget: number | undefined): ValueAndGrad<B> {
  return (params: Params, batch: B, pass: PassInputs = { frozen: {} }) => {
    let out: [Array, Record<string, Array>] | null = null;
    const grads = backwardPass(spec, params, batch, pass, budget, (logprobs, extra) => {
      const lossOfOutputs = (y: { logprobs: Array[]; extra: X }) => {
        const o = spec.loss(y.logprobs, y.extra, tree.ref(batch));
        return [o.loss, o.metrics] as [Array, Record<string, Array>];
      };
      const vg = valueAndGrad(lossOfOutputs, { hasAux: true }) as unknown as (y: { logprobs: Array[]; extra: X }) => [[Array, Record<string, Array>], { logprobs: Array[]; extra: X }];
      const [lossAndMetrics, cotangent] = vg({ logprobs, extra });
      out = lossAndMetrics;
      return cotangent;
    });
    return [out!, grads];
  };
}

/**
 * One forward and backward pass of a HeadLoss's body and head over `batch`: `backOf` is given the
 * head's log-probs (per group) and the body's other outputs and returns their cotangents (the
 * loss's gradient); the gradients of `params` (the trained ones) come back. Traced.
 */
function backwardPass<B, X>(
  spec: HeadLoss<B, X>,
  params: Params,
  batch: B,
  pass: PassInputs,
  budget: number | undefined,
  backOf: (logprobs: Array[], extra: X) => { logprobs: Array[]; extra: X },
): Params {
  type BodyOut = { hidden: Array[]; extra: X };
  const body = (p: Params) => spec.body(p, tree.ref(batch), pass.rng);
  const [out, pullback] = (vjp as unknown as (f: (p: Params) => BodyOut, primals: [Params]) => unknown)(body, [tree.ref({ ...pass.frozen, ...params })]) as [BodyOut, (ct: BodyOut) => [Params]];
  // A frozen head (a tied embedding, or an lm_head LoRA leaves alone) gets no gradient at all.
  const headTrained = spec.headWeight in params;
  const weight = (headTrained ? params : pass.frozen)[spec.headWeight]!;
  const targets = spec.targets(tree.ref(batch));
  const forwards = out.hidden.map((h, i) => headForward(h.ref, weight.ref, targets[i]!.ref, { temperature: spec.temperatures[i]!, budget, keepLogits: true }));
  const cotangent = backOf(forwards.map((f) => f.logprobs), out.extra);
  let headWeightGrad: Array | null = null;
  const hiddenGrads = out.hidden.map((h, i) => {
    const g = headBackward(h, weight.ref, targets[i]!, forwards[i]!, cotangent.logprobs[i]!, { temperature: spec.temperatures[i]!, budget, weightGrad: headTrained });
    if (headTrained) headWeightGrad = headWeightGrad === null ? g.weight! : headWeightGrad.add(g.weight!);
    return g.hidden;
  });
  const grads = trainedOnly(pullback({ hidden: hiddenGrads, extra: cotangent.extra })[0], params);
  if (headTrained) grads[spec.headWeight] = grads[spec.headWeight]!.add(headWeightGrad!);
  return grads;
}

/**
 * Loss, metrics and gradients of a HeadLoss with RowValues, one part of the rows at a time. The
 * loss L(v₁, …, v_K) couples the parts only through their values, so dL/dθ = Σ_k (∂L/∂v_k)·dv_k/dθ.
 * The values of every part but the first are computed first, without gradients; the first part's
 * forward pass then gives the loss and every ∂L/∂v_k, and each part's backward pass takes its own
 * (a later part's forward pass runs again for it, a constant part's never). The cost: one more
 * forward pass over the later parts. With a PRNG key (dropout), each part draws from its own.
 */
function rowPartsGrad<B>(spec: HeadLoss<B, Record<string, never>>, split: RowValues<B>, budget: number | undefined): ValueAndGrad<B> {
  return (params: Params, batch: B, pass: PassInputs = { frozen: {} }) => {
    const sizes = split.parts(batch);
    if (sizes[0]?.constant) throw new Error("rowPartsGrad: the first part of the rows is constant");
    const starts = sizes.map((_, k) => sizes.slice(0, k).reduce((n, s) => n + s.rows, 0));
    const parts = sizes.map(({ rows, constant }, k) => ({ batch: split.rows(tree.ref(batch), starts[k]!, starts[k]! + rows), constant: constant ?? false }));
    const keys = pass.rng ? random.split(pass.rng, parts.length) : null; // [K, 2]
    const partPass = (k: number): PassInputs => (keys ? { frozen: pass.frozen, rng: keys.ref.slice([k, k + 1]).reshape([2]) } : { frozen: pass.frozen });
    const valuesOf = (logprobs: Array[], part: B) => split.values(logprobs, tree.ref(part));
    const later = parts.slice(1).map((part, i) => partValues(spec, params, part.batch, partPass(i + 1), budget, valuesOf));
    let out: [Array, Record<string, Array>] | null = null;
    let valueCotangents: Array[] = [];
    const grads: Params[] = [];
    for (const [k, part] of parts.entries()) {
      if (part.constant) continue;
      grads.push(
        backwardPass(spec, params, part.batch, partPass(k), budget, (logprobs) => {
          const [values, pullValues] = (vjp as unknown as (f: (lp: Array[]) => Array, primals: [Array[]]) => [Array, (ct: Array) => [Array[]]])((lp) => valuesOf(lp, part.batch), [logprobs]);
          if (k === 0) {
            const lossOfValues = (vs: Array[]) => {
              const o = split.loss(np.concatenate(vs, 0), tree.ref(batch));
              return [o.loss, o.metrics] as [Array, Record<string, Array>];
            };
            const vg = valueAndGrad(lossOfValues, { hasAux: true }) as unknown as (vs: Array[]) => [[Array, Record<string, Array>], Array[]];
            [out, valueCotangents] = vg([values, ...later]);
          } else values.dispose();
          return { logprobs: pullValues(valueCotangents[k]!)[0], extra: {} };
        }),
      );
    }
    keys?.dispose();
    const total = grads.reduce((sum, g) => tree.map((a: Array, b: Array) => a.add(b), sum, g) as Params);
    return [out!, total];
  };
}

/** A part's row values without gradients: its forward pass and the head's log-probs, nothing kept. Traced. */
function partValues<B>(spec: HeadLoss<B, Record<string, never>>, params: Params, batch: B, pass: PassInputs, budget: number | undefined, valuesOf: (logprobs: Array[], part: B) => Array): Array {
  const { hidden } = spec.body(tree.ref({ ...pass.frozen, ...params }), tree.ref(batch), pass.rng);
  const targets = spec.targets(tree.ref(batch));
  const weight = { ...pass.frozen, ...params }[spec.headWeight]!;
  const logprobs = hidden.map((h, i) => headForward(h, weight.ref, targets[i]!, { temperature: spec.temperatures[i]!, budget }).logprobs);
  return valuesOf(logprobs, batch);
}

export interface TrainStepConfig {
  adamw: AdamWConfig;
  /** Clip the global gradient norm to this (TRL's max_grad_norm, default 1.0); null = no clipping. */
  maxGradNorm: number | null;
  /** Most logits that exist at once in a HeadLoss's head (models/lm-head.ts); its default otherwise. */
  headBudget?: number;
  /** Differentiate a HeadLoss's rows in the parts its RowValues gives, one after another (less memory, one more forward pass over the later parts). */
  rowParts?: boolean;
  /**
   * Seeds the PRNG key each training pass gets (LossFn's `rng`), a function of this seed, the step
   * number and the micro-batch, so a resumed run draws what an uninterrupted one drew. Unset: the
   * passes get no key (no dropout).
   */
  rngSeed?: number;
}

export interface StepResult {
  params: Params;
  state: AdamWState;
  loss: number;
  gradNorm: number;
  metrics: Record<string, number>;
}

export class TrainStep<B> {
  readonly #opt;
  readonly #config: TrainStepConfig;
  readonly #fused;
  readonly #grads;
  readonly #apply;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(lossFn: LossFn<B> | HeadLoss<B, any>, config: TrainStepConfig) {
    this.#config = config;
    const opt = adamw(config.adamw);
    this.#opt = opt;
    const vg = lossAndGradients(lossFn, config.headBudget, config.rowParts);
    const clipAndUpdate = (params: Params, state: AdamWState, grads: Params, lr: Array, bc1: Array, bc2: Array) => {
      let norm: Array;
      if (config.maxGradNorm !== null) ({ grads, norm } = clipByGlobalNorm(grads, config.maxGradNorm));
      else norm = globalNorm(grads);
      const next = opt.update(grads, state, params, { lr, biasCorrection1: bc1, biasCorrection2: bc2 });
      return { params: next.params, state: next.state, norm };
    };
    // The step consumes the old weights and moments, so each is freed once its update is written.
    this.#fused = compileConsuming((params: Params, state: AdamWState, batch: B, lr: Array, bc1: Array, bc2: Array, pass: PassInputs) => {
      const [[loss, metrics], grads] = vg(keep(params), batch, pass);
      return { loss, metrics, ...clipAndUpdate(params, state, grads, lr, bc1, bc2) };
    });
    this.#grads = compile((params: Params, batch: B, pass: PassInputs) => {
      const [[loss, metrics], grads] = vg(params, batch, pass);
      return { loss, metrics, grads };
    });
    this.#apply = compileConsuming(clipAndUpdate);
  }

  init(params: Params): AdamWState {
    return this.#opt.init(params);
  }

  /**
   * Runs one optimizer step (number `stepNumber`, 1-based, for Adam's bias correction) over the
   * micro-batches. Consumes `params` (the trained ones) and `state` and returns their successors;
   * the micro-batches and `frozen` (parameters the loss reads but nothing trains) are borrowed.
   */
  async step(params: Params, state: AdamWState, microBatches: B[], lr: number, stepNumber: number, frozen: Params = {}): Promise<StepResult> {
    if (microBatches.length === 0) throw new Error("TrainStep.step: no micro-batches");
    const s = stepScalars(this.#config.adamw, stepNumber, lr);
    const scalars = [fromHost([s.lr], []), fromHost([s.biasCorrection1], []), fromHost([s.biasCorrection2], [])] as const;
    const pass = (micro: number): PassInputs => (this.#config.rngSeed === undefined ? { frozen } : { frozen, rng: passKey(this.#config.rngSeed, stepNumber, micro) });
    let out: { params: Params; state: AdamWState; norm: Array; loss: Array; metrics: Record<string, Array> };
    if (microBatches.length === 1) {
      out = this.#fused(params, state, keep(microBatches[0]!), ...scalars, { ...pass(0), frozen: keep(frozen) });
    } else {
      // Mean of micro-batch gradients: the loss is a mean per micro-batch, so the accumulated
      // gradient equals the full batch's when micro-batches have equal weight.
      const scale = 1 / microBatches.length;
      let sum: Params | null = null;
      let lossSum: Array | null = null;
      let metricSum: Record<string, Array> = {};
      for (const [m, mb] of microBatches.entries()) {
        const inputs = pass(m);
        const g = this.#grads(params, mb, inputs);
        inputs.rng?.dispose();
        sum = sum === null ? g.grads : tree.map((a: Array, b: Array) => a.add(b), sum, g.grads) as Params;
        lossSum = lossSum === null ? g.loss : lossSum.add(g.loss);
        metricSum = Object.keys(metricSum).length === 0 ? g.metrics : (tree.map((a: Array, b: Array) => a.add(b), metricSum, g.metrics) as Record<string, Array>);
      }
      const grads = tree.map((a: Array) => a.mul(scale), sum!) as Params;
      const applied = this.#apply(params, state, grads, ...scalars);
      out = { ...applied, loss: lossSum!.mul(scale), metrics: tree.map((a: Array) => a.mul(scale), metricSum) as Record<string, Array> };
    }
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(out.metrics)) metrics[k] = await toNumber(v);
    return { params: out.params, state: out.state, loss: await toNumber(out.loss), gradNorm: await toNumber(out.norm), metrics };
  }

  dispose(): void {
    this.#fused.dispose();
    this.#grads.dispose();
    this.#apply.dispose();
  }
}

/** The PRNG key of micro-batch `micro` of step `step`: threefry's two key words from the seed, the micro-batch and the step. */
function passKey(seed: number, step: number, micro: number): Array {
  return np.array(Uint32Array.from([(seed ^ Math.imul(micro + 1, 0x9e3779b9)) >>> 0, step >>> 0]), { dtype: np.uint32 });
}
