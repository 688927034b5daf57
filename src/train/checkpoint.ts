// Every trainer's checkpoints, one format: DIR/checkpoint-N/ is a Hugging Face model directory
// (loadable by transformers and by `loadModel`: the model being trained), or a PEFT adapter
// directory when a LoRA adapter is what is trained, plus
// `optimizer.safetensors` (AdamW's first and second moments under torch's names), any further
// models in subdirectories (PPO's value/), and `trainer_state.json` (step, data or prompt position,
// RNG state, config, and what the trainer needs to go on exactly). The directory is assembled
// under a hidden temp name and renamed, so a directory named checkpoint-N is always complete; a
// run killed mid-save leaves only the hidden directory, which resuming ignores.
import { existsSync, readdirSync } from "node:fs";
import { readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { fromHost, keep, toHost } from "../engine/arrays.ts";
import type { AdamWState } from "../engine/optim.ts";
import { deserializeSafetensors, serializeSafetensors } from "../io/safetensors.ts";
import type { TensorMap } from "../io/tensors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { CheckpointError } from "../io/errors.ts";
import { ADAPTER_CONFIG, isAdapterDir } from "../models/adapter-files.ts";
import type { ModelConfig } from "../models/config.ts";
import { loadAdapterParams, loadModel, saveAdapter, saveModel, type GenerationConfig, type LoadedModel } from "../models/load.ts";
import type { LoraConfig } from "../models/lora.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { MetricRecord } from "./metrics-log.ts";

/** Where the data order stands: the shuffle of `epoch` is re-made from `rng_state`, then `position` micro-batch groups are skipped. */
export interface DataPosition {
  epoch: number;
  /** Optimizer steps already taken in this epoch. */
  position: number;
  /** HostRng state before this epoch's shuffle. */
  rng_state: number[];
}

/** trainer_state.json (HF's field names where HF has them: global_step, epoch, log_history). */
export interface TrainerState {
  trainer: "sft" | "reward" | "dpo" | "kto";
  global_step: number;
  /** Fractional epochs done. */
  epoch: number;
  max_steps: number;
  data: DataPosition;
  /** Identifies the training split (count and hash of its token ids), so resuming on other data fails. */
  data_fingerprint: string;
  num_tokens: number;
  config: Record<string, unknown>;
  log_history: MetricRecord[];
}

/** Every trainer's state file, written last into a checkpoint: its presence marks the checkpoint complete. */
export const STATE_FILE = "trainer_state.json";

export const CHECKPOINT_PATTERN = /^checkpoint-(\d+)$/;

export function checkpointDir(outputDir: string, step: number): string {
  return join(outputDir, `checkpoint-${step}`);
}

function optimizerTensors(state: AdamWState): Promise<TensorMap> {
  // torch.optim.AdamW's names for the moments, keyed by parameter name.
  const out: TensorMap = new Map();
  const entries = [...Object.entries(state.mu).map(([k, a]) => [`exp_avg.${k}`, a] as const), ...Object.entries(state.nu).map(([k, a]) => [`exp_avg_sq.${k}`, a] as const)];
  return (async () => {
    for (const [name, a] of entries) out.set(name, { shape: [...a.shape], data: await toHost(keep(a)) });
    return out;
  })();
}

/** A model a checkpoint carries, with what is saved along with its weights. */
export interface SavedModel {
  config: ModelConfig;
  params: Params;
  tokenizer?: Tokenizer;
  generationConfig?: GenerationConfig;
  /** Set when `params` are a LoRA adapter's (models/lora.ts): saved as a PEFT adapter directory, without its base. */
  adapter?: LoraConfig;
}

/**
 * What every trainer checkpoints. `model` sits at the top of checkpoint-N, so the directory loads
 * as that model (the one being trained: the policy); `others` (PPO's value model) sit in named
 * subdirectories. The optimizer's moments cover all of them, keyed by parameter name, with
 * `NAME/` in front for a model of `others`.
 */
export interface CheckpointContents<S extends { global_step: number }> {
  model: SavedModel;
  others?: Record<string, SavedModel>;
  optimizer: AdamWState;
  state: S;
}

/** Writes a saved model as its directory: a Hugging Face model, or a PEFT adapter. */
export function saveModelOf(dir: string, m: SavedModel, extraFiles?: Record<string, string | Uint8Array>): Promise<void> {
  if (m.adapter) return saveAdapter(dir, m.adapter, m.params, { tokenizer: m.tokenizer, ...(extraFiles ? { extraFiles } : {}) });
  return saveModel(dir, m.config, m.params, { ...(m.tokenizer ? { tokenizer: m.tokenizer } : {}), ...(m.generationConfig ? { generationConfig: m.generationConfig } : {}), ...(extraFiles ? { extraFiles } : {}) });
}

/** The file whose presence marks that directory complete when it is published file by file: what a loader reads first. */
export function completionMarker(m: Pick<SavedModel, "adapter">): string {
  return m.adapter ? ADAPTER_CONFIG : "config.json";
}

/**
 * Writes DIR/checkpoint-N (N = state.global_step). The directory is assembled under a hidden temp
 * name with trainer_state.json written last, then renamed: a checkpoint-N is always complete.
 */
export async function saveCheckpoint<S extends { global_step: number }>(outputDir: string, save: CheckpointContents<S>): Promise<string> {
  const step = save.state.global_step;
  const final = checkpointDir(outputDir, step);
  const tmp = join(outputDir, `.tmp-checkpoint-${step}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  const optimizer = serializeSafetensors(await optimizerTensors(save.optimizer), { metadata: { format: "pt" } });
  await saveModelOf(tmp, save.model, { "optimizer.safetensors": optimizer });
  for (const [name, m] of Object.entries(save.others ?? {})) await saveModelOf(join(tmp, name), m);
  await writeFileAtomic(join(tmp, STATE_FILE), JSON.stringify(save.state, null, 1) + "\n");
  await rm(final, { recursive: true, force: true });
  await rename(tmp, final);
  return final;
}

/** Complete checkpoints in DIR, oldest first: checkpoint-N directories holding trainer_state.json (written last). */
export function listCheckpoints(outputDir: string): { step: number; dir: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => ({ name, m: CHECKPOINT_PATTERN.exec(name) }))
    .filter(({ name, m }) => m && existsSync(join(outputDir, name, STATE_FILE)))
    .map(({ name, m }) => ({ step: Number(m![1]), dir: join(outputDir, name) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(outputDir: string): { step: number; dir: string } | null {
  return listCheckpoints(outputDir).at(-1) ?? null;
}

/** In a checkpoint a monitor asked to keep (monitor_action checkpoint): the events; save_total_limit passes it over. */
export const KEPT_MARKER = "monitor_events.json";

/** Deletes the oldest checkpoints beyond `limit` (save_total_limit); kept ones (KEPT_MARKER) neither count nor go. */
export async function pruneCheckpoints(outputDir: string, limit: number | null): Promise<void> {
  if (limit === null) return;
  const all = listCheckpoints(outputDir).filter((c) => !existsSync(join(c.dir, KEPT_MARKER)));
  for (const old of all.slice(0, Math.max(0, all.length - limit))) await rm(old.dir, { recursive: true, force: true });
}

export interface LoadedCheckpoint<S> {
  /** The trained parameters: the model's, or a LoRA adapter's alone. */
  model: Pick<LoadedModel, "params">;
  /** Each further model: loaded whole, or a LoRA adapter's parameters alone (no config: the run knows its base). */
  others: Record<string, LoadedModel | Pick<LoadedModel, "params">>;
  optimizer: AdamWState;
  state: S;
}

/**
 * Reads a checkpoint written by saveCheckpoint: the top model, the named `others`, the optimizer
 * moments of all of them (each checked against its parameter's shape) and the state, which
 * `check` validates (it throws a CheckpointError naming the file).
 */
export async function loadCheckpoint<S>(dir: string, options: { others?: string[]; check: (state: Record<string, unknown>, path: string) => S }): Promise<LoadedCheckpoint<S>> {
  const statePath = join(dir, STATE_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(statePath, "utf8"));
  } catch (err) {
    throw new CheckpointError(`${statePath}: cannot read the trainer state (${(err as Error).message})`);
  }
  if (raw === null || typeof raw !== "object" || typeof (raw as { global_step?: unknown }).global_step !== "number") throw new CheckpointError(`${statePath}: not a trainer state (no global_step)`);
  const state = options.check(raw as Record<string, unknown>, statePath);
  const trained = async (d: string) => (isAdapterDir(d) ? { params: await loadAdapterParams(d) } : await loadModel(d));
  const model = await trained(dir);
  const others: LoadedCheckpoint<S>["others"] = {};
  for (const name of options.others ?? []) others[name] = await trained(join(dir, name));
  const optPath = join(dir, "optimizer.safetensors");
  const tensors = deserializeSafetensors(new Uint8Array(await readFile(optPath)), optPath).tensors;
  const mu: Params = {};
  const nu: Params = {};
  const restore = (prefix: string, params: Params) => {
    for (const [name, p] of Object.entries(params)) {
      for (const [which, target] of [["exp_avg", mu], ["exp_avg_sq", nu]] as const) {
        const t = tensors.get(`${which}.${prefix}${name}`);
        if (!t || t.shape.join(",") !== p.shape.join(",")) throw new CheckpointError(`${optPath}: ${which}.${prefix}${name} is missing or has the wrong shape`);
        target[prefix + name] = fromHost(t.data, t.shape);
      }
    }
  };
  restore("", model.params);
  for (const [name, m] of Object.entries(others)) restore(`${name}/`, m.params);
  return { model, others, optimizer: { mu, nu }, state };
}

/**
 * Compares a checkpoint's config with the resumed run's: a field of `fixed` (data order, batch
 * shapes) must be equal, or resuming is refused; the other fields that changed are returned (the
 * run goes on with the new values, and will then differ from an uninterrupted one).
 */
export function configChanges(saved: Record<string, unknown>, now: Record<string, unknown>, fixed: readonly string[], dir: string): string[] {
  for (const field of fixed) {
    const [was, is] = [saved[field], now[field]];
    if (JSON.stringify(was) !== JSON.stringify(is)) throw new CheckpointError(`${dir} was trained with ${field} = ${JSON.stringify(was)}, now ${JSON.stringify(is)}; resuming needs the same value`);
  }
  return Object.keys(now)
    .filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(now[k]))
    .map((k) => `${k} ${JSON.stringify(saved[k])} → ${JSON.stringify(now[k])}`);
}
