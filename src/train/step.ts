// One optimizer step for any loss: value-and-gradient, optional gradient accumulation over
// micro-batches, clipping by global norm, AdamW. With one micro-batch everything is one compiled
// program; with several, gradients are summed on the device between two compiled halves.
import { tree, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, fromHost, keep, release, toNumber } from "../engine/arrays.ts";
import { adamw, clipByGlobalNorm, globalNorm, stepScalars, type AdamWConfig, type AdamWState, type Params } from "../engine/optim.ts";

export interface LossOutput {
  loss: Array;
  /** Scalars averaged over micro-batches and logged (e.g. accuracy, margin). */
  metrics: Record<string, Array>;
}

/** A traced loss over parameters and a batch (a tree of arrays). */
export type LossFn<B> = (params: Params, batch: B) => LossOutput;

export interface TrainStepConfig {
  adamw: AdamWConfig;
  /** Clip the global gradient norm to this (TRL's max_grad_norm, default 1.0); null = no clipping. */
  maxGradNorm: number | null;
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

  constructor(lossFn: LossFn<B>, config: TrainStepConfig) {
    this.#config = config;
    const opt = adamw(config.adamw);
    this.#opt = opt;
    const lossWithAux = (p: Params, b: B) => {
      const out = lossFn(p, b);
      return [out.loss, out.metrics] as [Array, Record<string, Array>];
    };
    const vg = valueAndGrad(lossWithAux, { hasAux: true }) as unknown as (p: Params, b: B) => [[Array, Record<string, Array>], Params];
    const clipAndUpdate = (params: Params, state: AdamWState, grads: Params, lr: Array, bc1: Array, bc2: Array) => {
      let norm: Array;
      if (config.maxGradNorm !== null) ({ grads, norm } = clipByGlobalNorm(grads, config.maxGradNorm));
      else norm = globalNorm(grads);
      const next = opt.update(grads, state, params, { lr, biasCorrection1: bc1, biasCorrection2: bc2 });
      return { params: next.params, state: next.state, norm };
    };
    this.#fused = compile((params: Params, state: AdamWState, batch: B, lr: Array, bc1: Array, bc2: Array) => {
      const [[loss, metrics], grads] = vg(keep(params), batch);
      return { loss, metrics, ...clipAndUpdate(params, state, grads, lr, bc1, bc2) };
    });
    this.#grads = compile((params: Params, batch: B) => {
      const [[loss, metrics], grads] = vg(params, batch);
      return { loss, metrics, grads };
    });
    this.#apply = compile(clipAndUpdate);
  }

  init(params: Params): AdamWState {
    return this.#opt.init(params);
  }

  /**
   * Runs one optimizer step (number `stepNumber`, 1-based, for Adam's bias correction) over the
   * micro-batches. Consumes `params` and `state` and returns their successors; the micro-batches
   * are borrowed.
   */
  async step(params: Params, state: AdamWState, microBatches: B[], lr: number, stepNumber: number): Promise<StepResult> {
    if (microBatches.length === 0) throw new Error("TrainStep.step: no micro-batches");
    const s = stepScalars(this.#config.adamw, stepNumber, lr);
    const scalars = [fromHost([s.lr], []), fromHost([s.biasCorrection1], []), fromHost([s.biasCorrection2], [])] as const;
    let out: { params: Params; state: AdamWState; norm: Array; loss: Array; metrics: Record<string, Array> };
    if (microBatches.length === 1) {
      out = this.#fused(params, state, microBatches[0]!, ...scalars);
    } else {
      // Mean of micro-batch gradients: the loss is a mean per micro-batch, so the accumulated
      // gradient equals the full batch's when micro-batches have equal weight.
      const scale = 1 / microBatches.length;
      let sum: Params | null = null;
      let lossSum: Array | null = null;
      let metricSum: Record<string, Array> = {};
      for (const mb of microBatches) {
        const g = this.#grads(params, mb);
        sum = sum === null ? g.grads : tree.map((a: Array, b: Array) => a.add(b), sum, g.grads) as Params;
        lossSum = lossSum === null ? g.loss : lossSum.add(g.loss);
        metricSum = Object.keys(metricSum).length === 0 ? g.metrics : (tree.map((a: Array, b: Array) => a.add(b), metricSum, g.metrics) as Record<string, Array>);
      }
      const grads = tree.map((a: Array) => a.mul(scale), sum!) as Params;
      const applied = this.#apply(params, state, grads, ...scalars);
      release(grads);
      out = { ...applied, loss: lossSum!.mul(scale), metrics: tree.map((a: Array) => a.mul(scale), metricSum) as Record<string, Array> };
    }
    release([params, state, scalars]);
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
