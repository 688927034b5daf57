// The parameters an on-policy run trains, their AdamW moments, and the update that moves them:
// TrainStep plus what every on-policy trainer does around it (the micro-batches are consumed, the
// new weights replace the old, and a non-finite loss ends the run, keeping the last checkpoint).
import { release } from "../engine/arrays.ts";
import type { AdamWState } from "../engine/optim.ts";
import type { Params } from "../models/types.ts";
import type { OptimizerFields } from "../train/optimizer.ts";
import { trainStepConfig } from "../train/optimizer.ts";
import { TrainStep, type HeadLoss, type LossFn, type StepResult } from "../train/step.ts";

export class PolicyUpdater<B> {
  readonly #train: TrainStep<B>;
  #params: Params;
  #optimizer: AdamWState;

  /** Takes ownership of `params` (and of `optimizer`, a resumed run's moments; fresh ones otherwise). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  constructor(loss: LossFn<B> | HeadLoss<B, any>, config: OptimizerFields, params: Params, optimizer?: AdamWState) {
    this.#train = new TrainStep(loss, trainStepConfig(config));
    this.#params = params;
    this.#optimizer = optimizer ?? this.#train.init(params);
  }

  /** The current parameters (owned here; don't release). */
  get params(): Params {
    return this.#params;
  }
  get optimizerState(): AdamWState {
    return this.#optimizer;
  }

  /** One optimizer step over `microBatches` (consumed); `label` names the run in the divergence error. */
  async update(microBatches: B[], learningRate: number, stepNumber: number, label: string): Promise<StepResult> {
    let out: StepResult;
    try {
      out = await this.#train.step(this.#params, this.#optimizer, microBatches, learningRate, stepNumber);
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
