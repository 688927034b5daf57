// Training checkpoints: DIR/checkpoint-N/ is a Hugging Face model directory (loadable by
// transformers and by `loadModel`) plus `trainer_state.json` (step, data position, RNG state,
// config, metric history) and `optimizer.safetensors` (AdamW's first and second moments). Each is
// written as one unit (io/atomic.ts), so a directory named checkpoint-N is always complete; a run
// killed mid-save leaves only a hidden temp directory, which resuming ignores.
import { existsSync, readdirSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fromHost, keep, toHost } from "../engine/arrays.ts";
import type { AdamWState } from "../engine/optim.ts";
import { deserializeSafetensors, serializeSafetensors } from "../io/safetensors.ts";
import type { TensorMap } from "../io/tensors.ts";
import type { ModelConfig } from "../models/config.ts";
import { loadModel, saveModel, type GenerationConfig, type LoadedModel } from "../models/load.ts";
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
  trainer: "sft" | "reward" | "dpo";
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

export async function saveCheckpoint(
  outputDir: string,
  save: { modelConfig: ModelConfig; params: Params; optimizer: AdamWState; state: TrainerState; tokenizer?: Tokenizer; generationConfig?: GenerationConfig },
): Promise<string> {
  const dir = checkpointDir(outputDir, save.state.global_step);
  const optimizer = serializeSafetensors(await optimizerTensors(save.optimizer), { metadata: { format: "pt" } });
  await saveModel(dir, save.modelConfig, save.params, {
    ...(save.tokenizer ? { tokenizer: save.tokenizer } : {}),
    ...(save.generationConfig ? { generationConfig: save.generationConfig } : {}),
    extraFiles: { "trainer_state.json": JSON.stringify(save.state, null, 1) + "\n", "optimizer.safetensors": optimizer },
  });
  return dir;
}

/**
 * Complete checkpoints in DIR, oldest first: checkpoint-N directories holding `marker`, the file a
 * trainer writes last (trainer_state.json here; ppo_state.json, group_state.json for the RL runs).
 */
export function listCheckpoints(outputDir: string, marker = "trainer_state.json"): { step: number; dir: string }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => ({ name, m: CHECKPOINT_PATTERN.exec(name) }))
    .filter(({ name, m }) => m && existsSync(join(outputDir, name, marker)))
    .map(({ name, m }) => ({ step: Number(m![1]), dir: join(outputDir, name) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(outputDir: string): { step: number; dir: string } | null {
  return listCheckpoints(outputDir).at(-1) ?? null;
}

/** Deletes the oldest checkpoints beyond `limit` (save_total_limit). */
export async function pruneCheckpoints(outputDir: string, limit: number | null, marker = "trainer_state.json"): Promise<void> {
  if (limit === null) return;
  const all = listCheckpoints(outputDir, marker);
  for (const old of all.slice(0, Math.max(0, all.length - limit))) await rm(old.dir, { recursive: true, force: true });
}

export interface LoadedCheckpoint {
  model: LoadedModel;
  optimizer: AdamWState;
  state: TrainerState;
}

export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const statePath = join(dir, "trainer_state.json");
  let state: TrainerState;
  try {
    state = JSON.parse(await readFile(statePath, "utf8")) as TrainerState;
  } catch (err) {
    throw new Error(`${statePath}: cannot read the trainer state (${(err as Error).message})`);
  }
  for (const field of ["global_step", "data", "data_fingerprint", "config"] as const) {
    if (state[field] === undefined) throw new Error(`${statePath}: missing field ${field}`);
  }
  const model = await loadModel(dir);
  const optPath = join(dir, "optimizer.safetensors");
  const tensors = deserializeSafetensors(new Uint8Array(await readFile(optPath)), optPath).tensors;
  const mu: Params = {};
  const nu: Params = {};
  for (const [name, p] of Object.entries(model.params)) {
    for (const [prefix, target] of [["exp_avg", mu], ["exp_avg_sq", nu]] as const) {
      const t = tensors.get(`${prefix}.${name}`);
      if (!t || t.shape.join(",") !== p.shape.join(",")) throw new Error(`${optPath}: ${prefix}.${name} is missing or has the wrong shape`);
      target[name] = fromHost(t.data, t.shape);
    }
  }
  return { model, optimizer: { mu, nu }, state };
}
