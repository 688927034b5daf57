// GRPO / RLOO checkpoints: DIR/checkpoint-N/ is the policy as a Hugging Face directory (usable as
// is) plus optimizer.safetensors (AdamW moments under torch's names) and group_state.json (step,
// RNG, prompt order, config). saveModel writes the directory atomically, so a checkpoint-N with a
// group_state.json is complete.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fromHost, keep, toHost } from "../engine/arrays.ts";
import type { AdamWState } from "../engine/optim.ts";
import { deserializeSafetensors, serializeSafetensors } from "../io/safetensors.ts";
import type { TensorMap } from "../io/tensors.ts";
import type { ModelConfig } from "../models/config.ts";
import { loadModel, saveModel, type LoadedModel } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { GroupProgress } from "./group-trainer.ts";
import { listCheckpoints } from "../train/checkpoint.ts";

export interface GroupCheckpointState {
  algorithm: "grpo" | "rloo";
  progress: GroupProgress;
  config: Record<string, unknown>;
  /** The prompts the run draws from (count:hash); a resumed run must be given the same ones. */
  prompts_fingerprint: string;
}

/** A checkpoint that cannot be resumed as asked; the CLI prints the message without a stack. */
export class CheckpointError extends Error {
  override name = "InputError";
}

export const GROUP_STATE = "group_state.json";
/** Fields that fix which prompts are drawn and the shape of every batch; a resumed run must keep them. */
const FIXED_FIELDS = ["batch_size", "num_generations", "max_completion_length"];

export function promptsFingerprint(prompts: string[]): string {
  const hash = createHash("sha256");
  for (const p of prompts) hash.update(p).update("\0");
  return `${prompts.length}:${hash.digest("hex").slice(0, 16)}`;
}

export async function saveGroupCheckpoint(
  outputDir: string,
  save: { modelConfig: ModelConfig; policy: Params; optimizer: AdamWState; state: GroupCheckpointState; tokenizer?: Tokenizer },
): Promise<string> {
  const dir = join(outputDir, `checkpoint-${save.state.progress.step}`);
  const moments: TensorMap = new Map();
  for (const [which, tree] of [["exp_avg", save.optimizer.mu], ["exp_avg_sq", save.optimizer.nu]] as const) {
    for (const [name, a] of Object.entries(tree)) moments.set(`${which}.${name}`, { shape: [...a.shape], data: await toHost(keep(a)) });
  }
  await saveModel(dir, save.modelConfig, save.policy, {
    ...(save.tokenizer ? { tokenizer: save.tokenizer } : {}),
    extraFiles: { [GROUP_STATE]: JSON.stringify(save.state, null, 1) + "\n", "optimizer.safetensors": serializeSafetensors(moments, { metadata: { format: "pt" } }) },
  });
  return dir;
}

export function latestGroupCheckpoint(outputDir: string): string | null {
  return listCheckpoints(outputDir, GROUP_STATE).at(-1)?.dir ?? null;
}

/**
 * Loads a checkpoint to resume `expected`'s run. Refuses one from the other algorithm, other
 * prompts or other batch shapes; returns the other config fields that changed (the run goes on
 * with the new values, but will then not match an uninterrupted one).
 */
export async function loadGroupCheckpoint(
  dir: string,
  expected: { algorithm: "grpo" | "rloo"; config: Record<string, unknown>; promptsFingerprint: string },
): Promise<{ policy: LoadedModel; optimizer: AdamWState; state: GroupCheckpointState; changed: string[] }> {
  const statePath = join(dir, GROUP_STATE);
  let state: GroupCheckpointState;
  try {
    state = JSON.parse(await readFile(statePath, "utf8")) as GroupCheckpointState;
  } catch (err) {
    throw new CheckpointError(`${statePath}: unreadable (${(err as Error).message})`);
  }
  if (!state.progress || typeof state.progress.step !== "number") throw new CheckpointError(`${statePath}: not a GRPO/RLOO checkpoint state`);
  if (state.algorithm !== expected.algorithm) throw new CheckpointError(`${dir} is a ${state.algorithm} checkpoint; resume it with rlhf ${state.algorithm}, not rlhf ${expected.algorithm}`);
  if (state.prompts_fingerprint !== expected.promptsFingerprint) {
    throw new CheckpointError(`${dir} was trained on other prompts (fingerprint ${state.prompts_fingerprint}, now ${expected.promptsFingerprint}); resume with the same --prompts`);
  }
  for (const field of FIXED_FIELDS) {
    const [was, now] = [state.config[field], expected.config[field]];
    if (was !== now) throw new CheckpointError(`${dir} was trained with ${field} = ${JSON.stringify(was)}, now ${JSON.stringify(now)}; resuming needs the same value`);
  }
  const changed = Object.keys(expected.config)
    .filter((k) => JSON.stringify(state.config[k]) !== JSON.stringify(expected.config[k]))
    .map((k) => `${k} ${JSON.stringify(state.config[k])} → ${JSON.stringify(expected.config[k])}`);
  const policy = await loadModel(dir);
  const optPath = join(dir, "optimizer.safetensors");
  const tensors = deserializeSafetensors(new Uint8Array(await readFile(optPath)), optPath).tensors;
  const mu: Params = {};
  const nu: Params = {};
  for (const [name, p] of Object.entries(policy.params)) {
    for (const [which, target] of [["exp_avg", mu], ["exp_avg_sq", nu]] as const) {
      const t = tensors.get(`${which}.${name}`);
      if (!t || t.shape.join(",") !== p.shape.join(",")) throw new CheckpointError(`${optPath}: ${which}.${name} is missing or has the wrong shape`);
      target[name] = fromHost(t.data, t.shape);
    }
  }
  return { policy, optimizer: { mu, nu }, state, changed };
}
