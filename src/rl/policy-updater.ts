// The parameters an on-policy run trains, their AdamW moments, and the update that moves them:
// TrainStep plus what every on-policy trainer does around it (the micro-batches are consumed, the
// new weights replace the old, and a non-finite loss ends the run, keeping the last checkpoint).
import { release } from "../engine/arrays.ts";
import type { AdamWState } from "../engine/optim.ts";
import type { Params } from "../models/types.ts";
import type { OptimizerFields } from "../train/optimizer.ts";
import { trainStepConfig } from "../train/optimizer.ts";
import { TrainStep, type HeadLoss, type LossFn, type StepResult } from "../train/step.ts";

export interface UpdaterOptions {
  /** A resumed run's moments (taken over); fresh ones otherwise. */
  optimizer?: AdamWState | undefined;
  /** Parameters the loss reads and nothing trains (a LoRA adapter's base): borrowed. */
  frozen?: Params;
  /** Seeds each pass's dropout key (TrainStepConfig.rngSeed); unset: no dropout. */
  rngSeed?: number | undefined;
}

export class PolicyUpdater<B> {
  readonly #train: TrainStep<B>;
  readonly #frozen: Params;
  #params: Params;
  #optimizer: AdamWState;

  /** Takes ownership of `params` (the trained ones). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(loss: LossFn<B> | HeadLoss<B, any>, config: OptimizerFields, params: Params, options: UpdaterOptions = {}) {
    this.#train = new TrainStep(loss, { ...trainStepConfig(config), ...(options.rngSeed !== undefined ? { rngSeed: options.rngSeed } : {}) });
    this.#frozen = options.frozen ?? {};
    this.#params = params;
    this.#optimizer = options.optimizer ?? this.#train.init(params);
  }

  /** The current trained parameters (owned here; don't release). */
  get params(): Params {
    return this.#params;
  }
  /** What a pass of the model reads: the frozen parameters with the trained ones over them (owned here). */
  get model(): Params {
    return { ...this.#frozen, ...this.#params };
  }
  get optimizerState(): AdamWState {
    return this.#optimizer;
  }

  /** One optimizer step over `microBatches` (consumed); `label` names the run in the divergence error. */
  async update(microBatches: B[], learningRate: number, stepNumber: number, label: string): Promise<StepResult> {
    let out: StepResult;
    try {
      out = await this.#train.step(this.#params, this.#optimizer, microBatches, learningRate, stepNumber, this.#frozen);
    } finally {
      release(microBatches as never);
    }
    this.#params = out.params;
    this.#optimizer = out.state;
    if (!Number.isFinite(out.loss)) throw new Error(`${label}: loss is ${out.loss}; stopping (the last checkpoint is kept)`);
    return out;
  }

  dispose(): void {
    this.#train.dispose();
  }
}
