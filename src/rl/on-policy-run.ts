// The one run loop of every on-policy trainer (PPO, GRPO, RLOO, online DPO): a fresh run or a
// resumed one, steps with progress, DIR/metrics.jsonl every logging_steps, DIR/samples.jsonl every
// sample_steps, DIR/checkpoint-N every save_steps (at most save_total_limit kept), and at the end
// the policy in DIR/policy and the config in DIR/<name>_config.json. A trainer only says how to take
// a step and what its state is (OnPolicyTrainer); the commands only turn flags into a config.
//
// Resuming: the latest complete checkpoint's policy, other models, optimizer moments and progress
// (step, RNG, prompt order, controller state) rebuild the trainer; metrics and samples written after
// that step are dropped, so the files read like one uninterrupted run, and the run then matches an
// uninterrupted one bit for bit. A checkpoint of another algorithm, other prompts or other batch
// shapes is refused; other changed settings are reported.
//
// Monitors (monitors/): every step is checked for the signs of reward hacking and of a broken run;
// each firing is a line of DIR/events.jsonl and of the console, and then, by monitor_action,
// nothing more (warn), that step's checkpoint kept out of save_total_limit's reach (checkpoint),
// or the run ended with the last checkpoint before the firing step as DIR/policy (stop).
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { AdamWState } from "../engine/optim.ts";
import { appendToFile, writeDirAtomic, writeFileAtomic } from "../io/atomic.ts";
import { CheckpointError } from "../io/errors.ts";
import type { ModelConfig } from "../models/config.ts";
import type { GenerationConfig } from "../models/load.ts";
import type { LoraConfig } from "../models/lora.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { configChanges, KEPT_MARKER, latestCheckpoint, listCheckpoints, loadCheckpoint, pruneCheckpoints, saveCheckpoint, saveModelOf, STATE_FILE, type LoadedCheckpoint, type SavedModel } from "../train/checkpoint.ts";
import { PEFT_FIELDS } from "../train/peft-config.ts";
import type { OnPolicyRunFields } from "../train/config.ts";
import { MetricsLog } from "../train/metrics-log.ts";
import { Progress } from "../train/progress.ts";
import type { MonitorEvent } from "./monitors/monitor.ts";
import { MonitorSet, monitorsFor, type MonitorContext, type MonitorState } from "./monitors/monitor-set.ts";
import { stepSignals } from "./monitors/signals.ts";

/** What one step of an on-policy trainer reports. */
export interface OnPolicyStepReport<S extends Record<string, unknown> = Record<string, unknown>> {
  /** Logged under TRL's names (METRICS.md). */
  metrics: Record<string, number>;
  /** Prompt, completion, score, … of this step's completions; the first few are kept in samples.jsonl. */
  samples: S[];
  /** For the progress line: the loss the step minimised, its learning rate and the tokens it generated. */
  loss: number;
  learningRate: number;
  generatedTokens: number;
  /** Wall-clock seconds of the step's phases where a trainer measures them (benchmarks read them; not logged). */
  phaseSeconds?: PhaseSeconds;
}

/** A step split as rollout papers report it: sampling, scoring (log-probs, values, rewards, advantages), updates. */
export interface PhaseSeconds {
  generation: number;
  scoring: number;
  update: number;
}

/** The shape every on-policy trainer has: the run loop needs nothing else. */
export interface OnPolicyTrainer<P extends { step: number }> {
  /** Everything besides the arrays that changes during a run (JSON), saved in every checkpoint. */
  readonly progress: P;
  /** The policy's trained parameters (owned by the trainer): the model's, or a LoRA adapter's. */
  readonly policy: Params;
  /** Other trained models (or adapters), saved in checkpoint subdirectories (PPO's value model). */
  readonly others: Record<string, Pick<SavedModel, "config" | "params" | "adapter">>;
  /** AdamW's moments over the policy's parameters and `NAME/`-prefixed ones of `others`. */
  readonly optimizerState: AdamWState;
  step(): Promise<OnPolicyStepReport>;
  /** Frees the trainer's arrays and its rollout engine (llama.cpp's model and temp files: awaited). */
  dispose(): Promise<void>;
}

/** What a resumed trainer is rebuilt from. */
export interface OnPolicyResume<P> {
  policy: Params;
  others: LoadedCheckpoint<unknown>["others"];
  optimizer: AdamWState;
  progress: P;
}

export interface OnPolicyRun<P extends { step: number }> {
  /** The algorithm (ppo, grpo, rloo, online_dpo): recorded in checkpoints, named in messages and files. */
  name: string;
  output: string;
  resume: boolean;
  config: OnPolicyRunFields;
  /** Config fields a resumed run must keep: they fix which prompts are drawn and every batch's shape. */
  fixedFields: readonly string[];
  /** The prompts drawn from; a resumed run must be given the same ones. */
  prompts: readonly string[];
  /** The starting policy's config and what is saved along with every policy; `adapter` when the policy trained is a LoRA adapter. */
  policy: { config: ModelConfig; tokenizer: Tokenizer; generationConfig?: GenerationConfig; adapter?: LoraConfig };
  /** --ref-model's path, recorded in checkpoints (absent: the reference is the starting policy); a resume with another is reported. */
  referenceModel?: string | undefined;
  /** Subdirectories of a checkpoint holding `others` (PPO: ["value"]). */
  others?: readonly string[];
  /** Builds the trainer, fresh or from a checkpoint. */
  create(resume?: OnPolicyResume<P>): OnPolicyTrainer<P> | Promise<OnPolicyTrainer<P>>;
  /** The console line after a logged step. */
  headline(metrics: Record<string, number>): string;
  /** Printed when the run ends (e.g. the memory report, made then: its peak is the run's). */
  finalNote?: () => string;
  /** What the monitors need besides the config (the reward model's statistics); absent: the reward-range monitor is off. */
  monitorContext?: MonitorContext;
  /** The trainer's reward source: what it measured of the step's scores (an ensemble's members' std) joins the step's metrics. */
  reward?: { takeMetrics?(): Record<string, number> };
  /** Stop (as a crash would, without the final save) after this many steps: tests of resuming. */
  stopAfterStep?: number;
  log?: (line: string) => void;
}

/** What a checkpoint's trainer_state.json holds for an on-policy run. */
export interface OnPolicyState<P> {
  trainer: string;
  global_step: number;
  config: Record<string, unknown>;
  prompts_fingerprint: string;
  /** --ref-model's path; absent when the reference is the starting policy. */
  ref_model?: string;
  progress: P;
  /** The monitors' history and conditions at this step (absent in checkpoints made before monitors). */
  monitors?: MonitorState;
}

export function promptsFingerprint(prompts: readonly string[]): string {
  const hash = createHash("sha256");
  for (const p of prompts) hash.update(p).update("\0");
  return `${prompts.length}:${hash.digest("hex").slice(0, 16)}`;
}

/**
 * A fresh run in a directory that holds one would leave the old run's later checkpoints behind for
 * a --resume to pick up: refused (commands call this before loading anything, runOnPolicy again).
 */
export function refuseOldRun(output: string, resume: boolean): void {
  const latest = latestCheckpoint(output);
  if (latest && !resume) throw new CheckpointError(`${output} already holds a run (${latest.dir}); pass --resume to continue it, or choose another --output`);
}

/**
 * Runs `run` to total_steps (or continues it) and returns the final policy's directory, or null
 * when a monitor stopped the run before any checkpoint (DIR/policy is then not written).
 */
export async function runOnPolicy<P extends { step: number }>(run: OnPolicyRun<P>): Promise<string | null> {
  const { name, output, config } = run;
  const log = run.log ?? ((line: string) => process.stderr.write(line + "\n"));
  const fingerprint = promptsFingerprint(run.prompts);
  refuseOldRun(output, run.resume);
  const latest = latestCheckpoint(output);
  await mkdir(output, { recursive: true });
  const metrics = new MetricsLog(output);
  const samplesPath = join(output, "samples.jsonl");
  const eventsPath = join(output, "events.jsonl");
  const context = run.monitorContext ?? { rewardStats: null, rewardStatsMissing: "the run was given no reward-model statistics", truncationLosesSignal: false };
  const { monitors: enabled, notes } = monitorsFor(config, context);
  for (const note of notes) log(`${name}: ${note}`);
  let monitors: MonitorSet;

  let trainer: OnPolicyTrainer<P>;
  if (latest) {
    const saved = await loadCheckpoint(latest.dir, { others: [...(run.others ?? [])], check: (state, path) => checkState<P>(state, path, name, fingerprint) });
    // The LoRA fields fix what is trained, so they may not change either.
    const changed = configChanges(saved.state.config, config as unknown as Record<string, unknown>, [...run.fixedFields, ...PEFT_FIELDS], latest.dir);
    trainer = await run.create({ policy: saved.model.params, others: saved.others, optimizer: saved.optimizer, progress: saved.state.progress });
    // Lines from steps after the checkpoint were written by the run that stopped; they are redone.
    metrics.truncateAfter(saved.state.global_step);
    await truncateJsonl(samplesPath, saved.state.global_step);
    await truncateJsonl(eventsPath, saved.state.global_step);
    monitors = new MonitorSet(enabled, config.monitor_window, saved.state.monitors);
    log(`${name}: resumed from ${latest.dir} (step ${saved.state.global_step} of ${config.total_steps})`);
    // The monitors only watch: changing them changes the events, never the trajectory.
    const watched = changed.filter((c) => c.startsWith("monitor_"));
    const trained = changed.filter((c) => !c.startsWith("monitor_"));
    if (saved.state.ref_model !== run.referenceModel) trained.push(`ref_model ${saved.state.ref_model ?? "(the starting policy)"} → ${run.referenceModel ?? "(the starting policy)"}`);
    if (trained.length > 0) log(`${name}: config changed since the checkpoint (${trained.join(", ")}); the run will differ from an uninterrupted one`);
    if (watched.length > 0) log(`${name}: monitor settings changed since the checkpoint (${watched.join(", ")}); training goes on as it would have`);
  } else {
    if (run.resume) log(`${name}: no checkpoint in ${output}; starting from the beginning`);
    // A fresh run starts fresh logs.
    await rm(metrics.path, { force: true });
    await rm(samplesPath, { force: true });
    await rm(eventsPath, { force: true });
    monitors = new MonitorSet(enabled, config.monitor_window);
    trainer = await run.create();
  }

  const progress = new Progress(config.total_steps, { firstStep: trainer.progress.step });
  const started = performance.now();
  let tokens = 0;
  try {
    while (trainer.progress.step < config.total_steps) {
      const report = await trainer.step();
      Object.assign(report.metrics, run.reward?.takeMetrics?.());
      const step = trainer.progress.step;
      tokens += report.generatedTokens;
      progress.tick({ step, loss: report.loss, tokensPerSecond: tokens / ((performance.now() - started) / 1000), learningRate: report.learningRate });
      const last = step === config.total_steps;
      if (step % config.logging_steps === 0 || last) {
        metrics.append({ step, ...report.metrics });
        progress.line(`step ${step}: ${run.headline(report.metrics)}`);
      }
      if (step % config.sample_steps === 0 || step === 1) {
        await appendToFile(samplesPath, report.samples.slice(0, 4).map((s) => JSON.stringify({ step, ...s }) + "\n").join(""));
      }
      const events = monitors.observe(stepSignals(step, report));
      for (const e of events) progress.line(`${name}: monitor ${e.monitor} fired at step ${step}: ${e.message}`);
      if (events.length > 0) await appendToFile(eventsPath, events.map((e) => JSON.stringify(e) + "\n").join(""));
      if (events.length > 0 && config.monitor_action === "stop") {
        progress.finish();
        return await stopBeforeOnset(run, step, events, log);
      }
      const keep = events.length > 0 && config.monitor_action === "checkpoint";
      if (step % config.save_steps === 0 || last || keep) {
        const state: OnPolicyState<P> = { trainer: name, global_step: step, config: { ...config }, prompts_fingerprint: fingerprint, ...(run.referenceModel ? { ref_model: run.referenceModel } : {}), progress: structuredClone(trainer.progress), monitors: monitors.state };
        const others = Object.fromEntries(Object.entries(trainer.others).map(([k, m]) => [k, { ...m, tokenizer: run.policy.tokenizer }]));
        const dir = await saveCheckpoint(output, { model: { ...savedAlong(run), params: trainer.policy }, others, optimizer: trainer.optimizerState, state });
        if (keep) {
          await writeFileAtomic(join(dir, KEPT_MARKER), JSON.stringify(events, null, 1) + "\n");
          log(`${name}: kept ${dir} (monitor_action checkpoint; save_total_limit does not remove it)`);
        }
        await pruneCheckpoints(output, config.save_total_limit);
      }
      if (run.stopAfterStep !== undefined && step >= run.stopAfterStep && !last) return join(output, "policy");
    }
    progress.finish();
    const policyDir = join(output, "policy");
    await saveModelOf(policyDir, { ...savedAlong(run), params: trainer.policy });
    await writeFileAtomic(join(output, `${name}_config.json`), JSON.stringify(config, null, 2) + "\n");
    log(`${name}: done; final policy in ${policyDir}`);
    if (run.finalNote) log(`${name}: ${run.finalNote()}`);
    return policyDir;
  } finally {
    progress.finish();
    await trainer.dispose();
  }
}

/**
 * monitor_action stop: the run ends at `step`, and the last checkpoint saved before it becomes
 * DIR/policy (its model or adapter files; the optimizer, the state and other models stay behind).
 * That checkpoint's policy is the one before the update of the step that fired.
 */
async function stopBeforeOnset<P extends { step: number }>(run: OnPolicyRun<P>, step: number, events: MonitorEvent[], log: (line: string) => void): Promise<string | null> {
  const { name, output, config } = run;
  await writeFileAtomic(join(output, `${name}_config.json`), JSON.stringify(config, null, 2) + "\n");
  const before = listCheckpoints(output).filter((c) => c.step < step).at(-1);
  const fired = events.map((e) => e.monitor).join(", ");
  if (!before) {
    log(`${name}: stopped at step ${step} by monitor ${fired} (monitor_action stop); no checkpoint before it, so no DIR/policy (lower save_steps to keep one)`);
    return null;
  }
  const policyDir = join(output, "policy");
  const files: Record<string, Uint8Array> = {};
  for (const file of await readdir(before.dir)) {
    if (file === STATE_FILE || file === "optimizer.safetensors" || file === KEPT_MARKER || !(await stat(join(before.dir, file))).isFile()) continue;
    files[file] = await readFile(join(before.dir, file));
  }
  await writeDirAtomic(policyDir, files);
  log(`${name}: stopped at step ${step} by monitor ${fired} (monitor_action stop); ${policyDir} is ${before.dir}, the last checkpoint before it`);
  return policyDir;
}

function savedAlong<P extends { step: number }>(run: OnPolicyRun<P>): Omit<SavedModel, "params"> {
  const { config, tokenizer, generationConfig, adapter } = run.policy;
  return { config, tokenizer, ...(generationConfig ? { generationConfig } : {}), ...(adapter ? { adapter } : {}) };
}

function checkState<P>(state: Record<string, unknown>, path: string, name: string, fingerprint: string): OnPolicyState<P> {
  const dir = path.replace(/[\\/][^\\/]+$/, "");
  if (typeof state.trainer !== "string" || !state.progress || typeof state.config !== "object") throw new CheckpointError(`${path}: not an on-policy trainer state`);
  if (state.trainer !== name) throw new CheckpointError(`${dir} is a ${state.trainer} checkpoint; resume it with rlhf ${state.trainer.replace("_", "-")}, not rlhf ${name.replace("_", "-")}`);
  if (state.prompts_fingerprint !== fingerprint) {
    throw new CheckpointError(`${dir} was trained on other prompts (fingerprint ${String(state.prompts_fingerprint)}, now ${fingerprint}); resume with the same --prompts`);
  }
  return state as unknown as OnPolicyState<P>;
}

/** Drops the records of steps after `step` from a JSON-lines file of {step, ...} records (a torn last line too). */
async function truncateJsonl(path: string, step: number): Promise<void> {
  if (!existsSync(path)) return;
  const kept = (await readFile(path, "utf8")).split("\n").filter((line) => {
    try {
      return (JSON.parse(line) as { step?: number }).step! <= step;
    } catch {
      return false;
    }
  });
  await writeFileAtomic(path, kept.map((l) => l + "\n").join(""));
}
