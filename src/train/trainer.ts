// The loop every offline trainer shares (SFT, reward models, DPO, KTO): seeded data order,
// gradient accumulation, the learning-rate schedule, logging to DIR/metrics.jsonl and the
// progress bar, evaluation on the held-out split, checkpoints, resuming, and stopping on a
// non-finite loss. A trainer supplies the examples, a batch builder and its losses.
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";
import { compile, release, toNumber } from "../engine/arrays.ts";
import type { AdamWState } from "../engine/optim.ts";
import { HostRng } from "../engine/random.ts";
import { learningRateAt, type ScheduleConfig } from "../engine/schedule.ts";
import type { ModelConfig } from "../models/config.ts";
import type { GenerationConfig } from "../models/load.ts";
import type { LoraConfig } from "../models/lora.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { checkpointDir, completionMarker, configChanges, latestCheckpoint, loadCheckpoint, pruneCheckpoints, saveCheckpoint, saveModelOf, type SavedModel, type TrainerState } from "./checkpoint.ts";
import { ConfigError, stepPlan, type TrainingArguments } from "./config.ts";
import { CheckpointError } from "../io/errors.ts";
import { MetricsLog, type MetricRecord } from "./metrics-log.ts";
import { Progress } from "./progress.ts";
import { trainStepConfig } from "./optimizer.ts";
import { PEFT_FIELDS } from "./peft-config.ts";
import { headLossValue, isHeadLoss, TrainStep, type HeadLoss, type LossFn } from "./step.ts";

export interface DeviceBatch<B> {
  batch: B;
  /** Real (non-padding) tokens, for throughput. */
  tokens: number;
  /** Weight of this batch's mean loss in a held-out average (target tokens for SFT, pairs for RMs). */
  weight: number;
}

export interface TrainTask<E, B> {
  kind: TrainerState["trainer"];
  config: TrainingArguments;
  /** The config saved with the weights (e.g. a causal LM turned sequence classifier). */
  modelConfig: ModelConfig;
  /** The starting model's generation_config.json, kept in every save (its stop tokens, sampling defaults). */
  generationConfig?: GenerationConfig;
  tokenizer?: Tokenizer;
  train: E[];
  eval: E[];
  /** Token ids of an example, for the data fingerprint. */
  fingerprintOf(example: E): readonly number[];
  makeBatch(examples: E[]): DeviceBatch<B>;
  /** The loss, trained and evaluated on the held-out split. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  loss: LossFn<B> | HeadLoss<B, any>;
  /**
   * LoRA: the params `train` takes are an adapter (models/lora.ts) on this frozen base, which the
   * loss reads and nothing trains (borrowed for the run); saves are PEFT adapter directories.
   */
  adapter?: { base: Params; config: LoraConfig };
  /** Most logits the LM head holds at once (the memory plan's choice, memory-plan.ts planLayout); lm-head.ts's default otherwise. */
  headBudget?: number;
  /** Differentiate the loss's rows in parts (TrainStepConfig.rowParts; the memory plan's choice, memory-plan.ts planLayout). */
  rowParts?: boolean;
}
// The losses' metrics (e.g. accuracy, margin) are logged under their own names and as eval_<name>.

export interface TrainOptions {
  outputDir: string;
  /** Continue from the latest complete checkpoint in outputDir (fresh start when there is none). */
  resume?: boolean;
  /** Evaluate before the first step of a fresh run too (logged as step 0), to show what training changed. */
  evaluateAtStart?: boolean;
  /** Stop (as a crash would, without a final save) after this many steps: tests of resuming. */
  stopAfterStep?: number;
  progress?: Progress | false;
  /** Printed through the progress output (resume notices, evaluation results). */
  log?: (line: string) => void;
}

export interface TrainResult {
  params: Params;
  state: TrainerState;
  /** Directory of the final checkpoint (null when stopped early by stopAfterStep). */
  finalCheckpoint: string | null;
}

/** Raised when the loss or gradient becomes NaN or infinite; nothing is saved after the last good checkpoint. */
export class DivergenceError extends Error {
  override name = "DivergenceError";
}

export function fingerprint<E>(examples: E[], idsOf: (e: E) => readonly number[]): string {
  const hash = createHash("sha256");
  for (const e of examples) hash.update(new Uint8Array(Int32Array.from(idsOf(e)).buffer)).update("|");
  return `${examples.length}:${hash.digest("hex").slice(0, 16)}`;
}

/** Fields that fix the data order and batch shapes; a resumed run must keep them. */
const ORDER_FIELDS = ["seed", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "packing", "completion_only_loss"];

/**
 * Trains `params` (consumed) and returns the final ones. With `resume`, the latest checkpoint's
 * weights, optimizer state, data position and RNG state replace the fresh start, and the run
 * continues to the same end as an uninterrupted one would.
 */
export async function train<E, B>(task: TrainTask<E, B>, params: Params, options: TrainOptions): Promise<TrainResult> {
  const { config } = task;
  const log = options.log ?? ((line: string) => process.stderr.write(line + "\n"));
  const examplesPerStep = config.per_device_train_batch_size * config.gradient_accumulation_steps;
  const stepsPerEpoch = Math.floor(task.train.length / examplesPerStep);
  if (stepsPerEpoch === 0) {
    throw new ConfigError(`${task.train.length} training examples are fewer than one optimizer step needs (per_device_train_batch_size × gradient_accumulation_steps = ${examplesPerStep})`);
  }
  const { totalSteps, warmupSteps } = stepPlan(config, stepsPerEpoch);
  const schedule: ScheduleConfig = { name: config.lr_scheduler_type, learningRate: config.learning_rate, warmupSteps, totalSteps };
  const dataFingerprint = fingerprint(task.train, task.fingerprintOf);

  await mkdir(options.outputDir, { recursive: true });
  const metrics = new MetricsLog(options.outputDir);
  // Dropout draws a key per pass only where there is dropout: LoRA's lora_dropout.
  const dropout = (task.adapter?.config.lora_dropout ?? 0) > 0;
  const trainStep = new TrainStep(task.loss, { ...trainStepConfig(config), ...(dropout ? { rngSeed: config.seed } : {}), ...(task.headBudget !== undefined ? { headBudget: task.headBudget } : {}), ...(task.rowParts ? { rowParts: true } : {}) });
  const frozen = task.adapter?.base ?? {};

  let optimizer: AdamWState;
  let state: TrainerState = {
    trainer: task.kind,
    global_step: 0,
    epoch: 0,
    max_steps: totalSteps,
    data: { epoch: 0, position: 0, rng_state: new HostRng(config.seed).state },
    data_fingerprint: dataFingerprint,
    num_tokens: 0,
    config: { ...config },
    log_history: [],
  };
  const latest = options.resume ? latestCheckpoint(options.outputDir) : null;
  if (latest) {
    const ckpt = await loadCheckpoint(latest.dir, { check: checkTrainerState });
    const changed = checkResumable(ckpt.state, state, latest.dir);
    checkSameParameters(ckpt.model.params, params, latest.dir);
    release(params);
    params = ckpt.model.params;
    optimizer = ckpt.optimizer;
    state = { ...ckpt.state, max_steps: totalSteps, config: { ...config } };
    metrics.truncateAfter(state.global_step);
    log(`resuming from ${latest.dir} (step ${state.global_step} of ${totalSteps})`);
    if (changed.length > 0) log(`config changed since the checkpoint (${changed.join(", ")}); the run will differ from an uninterrupted one`);
  } else {
    if (options.resume) log(`no checkpoint in ${options.outputDir}; starting from the beginning`);
    else await rm(metrics.path, { force: true });
    optimizer = trainStep.init(params);
  }

  const evaluator = task.eval.length > 0 ? new Evaluator(task) : null;
  const progress = options.progress === false ? null : (options.progress ?? new Progress(totalSteps, { firstStep: state.global_step }));
  const say = (line: string) => (progress ? progress.line(line) : log(line));
  const indices = Array.from({ length: task.train.length }, (_, i) => i);
  let rng = new HostRng(state.data.rng_state);
  let order = rng.shuffle([...indices]);
  let lastSaved: string | null = latest?.dir ?? null;
  const window = { loss: 0, steps: 0, tokens: 0, seconds: 0, metrics: {} as Record<string, number> };
  const evalEvery = config.eval_steps ?? config.logging_steps;

  try {
    if (evaluator && options.evaluateAtStart && state.global_step === 0) await evaluate();
    while (state.global_step < totalSteps) {
      if (state.data.position === stepsPerEpoch) {
        // Next epoch: the generator has moved on by exactly one shuffle, so its state is the new epoch's seed.
        state.data = { epoch: state.data.epoch + 1, position: 0, rng_state: rng.state };
        order = rng.shuffle([...indices]);
      }
      const started = performance.now();
      const micro: DeviceBatch<B>[] = [];
      for (let m = 0; m < config.gradient_accumulation_steps; m++) {
        const from = (state.data.position * config.gradient_accumulation_steps + m) * config.per_device_train_batch_size;
        micro.push(task.makeBatch(order.slice(from, from + config.per_device_train_batch_size).map((i) => task.train[i]!)));
      }
      const step = state.global_step + 1;
      const lr = learningRateAt(schedule, state.global_step);
      let result;
      try {
        result = await trainStep.step(params, optimizer, micro.map((b) => b.batch), lr, step, frozen);
      } finally {
        release(micro.map((b) => b.batch));
      }
      params = result.params;
      optimizer = result.state;
      if (!Number.isFinite(result.loss) || !Number.isFinite(result.gradNorm)) {
        throw new DivergenceError(
          `${Number.isFinite(result.loss) ? `the gradient norm became ${result.gradNorm} (loss ${result.loss})` : `the loss became ${result.loss}`} at step ${step}; training stopped and nothing after it was saved. ` +
            (lastSaved ? `The last good checkpoint is ${lastSaved}; lower learning_rate and resume from it with --resume.` : "No checkpoint was written yet; lower learning_rate and start again."),
        );
      }
      const tokens = micro.reduce((n, b) => n + b.tokens, 0);
      const seconds = (performance.now() - started) / 1000;
      state.global_step = step;
      state.data.position += 1;
      state.num_tokens += tokens;
      state.epoch = state.data.epoch + state.data.position / stepsPerEpoch;
      window.loss += result.loss;
      window.steps += 1;
      window.tokens += tokens;
      window.seconds += seconds;
      for (const [k, v] of Object.entries(result.metrics)) window.metrics[k] = (window.metrics[k] ?? 0) + v;
      progress?.tick({ step, loss: result.loss, tokensPerSecond: tokens / seconds, learningRate: lr });

      const last = step === totalSteps;
      if (step % config.logging_steps === 0 || last) {
        const record: MetricRecord = { loss: window.loss / window.steps };
        for (const [k, v] of Object.entries(window.metrics)) record[k] = v / window.steps;
        Object.assign(record, { grad_norm: result.gradNorm, learning_rate: lr, num_tokens: state.num_tokens, train_tokens_per_second: window.tokens / window.seconds, epoch: round(state.epoch), step });
        emit(record);
        Object.assign(window, { loss: 0, steps: 0, tokens: 0, seconds: 0, metrics: {} });
      }
      if (evaluator && (step % evalEvery === 0 || last)) await evaluate();
      if (step % config.save_steps === 0 || last) {
        lastSaved = await saveCheckpoint(options.outputDir, { model: savedModel(task, params), optimizer, state: structuredClone(state) });
        await pruneCheckpoints(options.outputDir, config.save_total_limit);
      }
      if (options.stopAfterStep !== undefined && step >= options.stopAfterStep && !last) {
        release(optimizer);
        return { params, state, finalCheckpoint: null };
      }
    }
    progress?.finish();
    // A run resumed after its last step finished re-publishes the final weights (idempotent).
    await publishFinal(options.outputDir, savedModel(task, params), state);
    release(optimizer);
    return { params, state, finalCheckpoint: checkpointDir(options.outputDir, state.global_step) };
  } catch (err) {
    // The step consumes params and optimizer state; after a failure inside it they may be gone already.
    try {
      release([params, optimizer]);
    } catch {
      /* already released */
    }
    throw err;
  } finally {
    progress?.finish();
    trainStep.dispose();
    evaluator?.dispose();
  }

  async function evaluate(): Promise<void> {
    const record = { ...(await evaluator!.run({ ...frozen, ...params })), epoch: round(state.epoch), step: state.global_step };
    emit(record);
    if (!progress || progress.interactive) say(`eval at step ${state.global_step}: ${Object.entries(record).filter(([k]) => k.startsWith("eval_")).map(([k, v]) => `${k}=${v.toFixed(4)}`).join(" ")}`);
  }

  function emit(record: MetricRecord): void {
    metrics.append(record);
    state.log_history.push(record);
    progress?.log(record);
  }
}

function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** Refuses a checkpoint of another trainer, other data or another data order; returns the other config changes. */
function checkResumable(saved: TrainerState, fresh: TrainerState, dir: string): string[] {
  if (saved.trainer !== fresh.trainer) throw new ConfigError(`${dir} is a ${saved.trainer} checkpoint, not ${fresh.trainer}`);
  if (saved.data_fingerprint !== fresh.data_fingerprint) {
    throw new ConfigError(`${dir} was trained on other data (fingerprint ${saved.data_fingerprint}, now ${fresh.data_fingerprint}); resume with the same --data and split settings`);
  }
  // The length of the run may change on resume (max_steps, num_train_epochs): not worth a notice.
  // The LoRA fields fix what is trained, so they may not change.
  return configChanges(saved.config, fresh.config, [...ORDER_FIELDS, ...PEFT_FIELDS], dir).filter((c) => !/^(max_steps|num_train_epochs) /.test(c));
}

/** A checkpoint must hold the parameters this run trains, name for name and shape for shape. */
function checkSameParameters(saved: Params, fresh: Params, dir: string): void {
  const describe = (p: Params) => Object.keys(p).sort().map((k) => `${k} [${p[k]!.shape.join(", ")}]`);
  const [have, want] = [describe(saved), describe(fresh)];
  const differ = want.find((w, i) => have[i] !== w) ?? have[want.length];
  if (have.length !== want.length || differ !== undefined) {
    release(saved);
    throw new CheckpointError(`${dir} holds other parameters than this run trains (${differ ?? "a different count"}); resume with the settings it was trained with`);
  }
}

function checkTrainerState(state: Record<string, unknown>, path: string): TrainerState {
  for (const field of ["trainer", "data", "data_fingerprint", "config"]) {
    if (state[field] === undefined) throw new ConfigError(`${path}: missing field ${field}`);
  }
  return state as unknown as TrainerState;
}

/** What a save of `params` holds: the model (or adapter) with the tokenizer and generation_config.json, when the task has them. */
function savedModel<E, B>(task: TrainTask<E, B>, params: Params): SavedModel {
  return {
    config: task.modelConfig,
    params,
    ...(task.tokenizer ? { tokenizer: task.tokenizer } : {}),
    ...(task.generationConfig ? { generationConfig: task.generationConfig } : {}),
    ...(task.adapter ? { adapter: task.adapter.config } : {}),
  };
}

/**
 * The final weights at the top of DIR too, so DIR itself loads as a model (or as the adapter).
 * Files are moved in one by one with config.json (adapter_config.json) last: a DIR that has it
 * holds complete weights.
 */
async function publishFinal(outputDir: string, model: SavedModel, state: TrainerState): Promise<void> {
  const staging = join(outputDir, `.final-tmp-${process.pid}`);
  const marker = completionMarker(model);
  // trainer_state.json travels along so `rm eval --split eval` can re-make the held-out split.
  await saveModelOf(staging, model, { "trainer_state.json": JSON.stringify(state, null, 1) + "\n" });
  await rm(join(outputDir, marker), { force: true });
  const files = (await readdir(staging)).filter((f) => f !== marker);
  for (const f of files) await rename(join(staging, f), join(outputDir, f));
  await writeFileAtomic(join(outputDir, marker), await readFile(join(staging, marker)));
  await rm(staging, { recursive: true, force: true });
}

/** Held-out loss and metrics: batch means weighted by each batch's weight (tokens or pairs). */
class Evaluator<E, B> {
  readonly #task: TrainTask<E, B>;
  readonly #loss;

  constructor(task: TrainTask<E, B>) {
    this.#task = task;
    const loss = task.loss;
    this.#loss = compile((params: Params, batch: B) => (isHeadLoss(loss) ? headLossValue(loss, params, batch, task.headBudget) : loss(params, batch)));
  }

  async run(params: Params): Promise<MetricRecord> {
    const size = this.#task.config.per_device_eval_batch_size;
    const sums: Record<string, number> = {};
    let total = 0;
    for (let from = 0; from < this.#task.eval.length; from += size) {
      const b = this.#task.makeBatch(this.#task.eval.slice(from, from + size));
      const out = this.#loss(params, b.batch);
      release(b.batch);
      const values: Record<string, number> = { loss: await toNumber(out.loss) };
      for (const [k, v] of Object.entries(out.metrics)) values[k] = await toNumber(v);
      for (const [k, v] of Object.entries(values)) sums[k] = (sums[k] ?? 0) + v * b.weight;
      total += b.weight;
    }
    return Object.fromEntries(Object.entries(sums).map(([k, v]) => [`eval_${k}`, v / Math.max(total, 1e-12)]));
  }

  dispose(): void {
    this.#loss.dispose();
  }
}
