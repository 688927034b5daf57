// PPO checkpoints, resumable (TRL cannot resume PPO): DIR/checkpoint-N/ holds policy/ and value/
// (Hugging Face directories; policy/ is the model to use), optimizer.safetensors (AdamW moments of
// both networks), ppo_state.json (step, episode, RNG, prompt order, KL controller, config). The
// directory is assembled under a temp name and renamed, so checkpoint-N is always complete.
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fromHost, keep, toHost } from "../engine/arrays.ts";
import type { AdamWState } from "../engine/optim.ts";
import { deserializeSafetensors, serializeSafetensors } from "../io/safetensors.ts";
import type { TensorMap } from "../io/tensors.ts";
import type { ModelConfig } from "../models/config.ts";
import { loadModel, saveModel, type LoadedModel } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { PpoProgress } from "./ppo-trainer.ts";
import { listCheckpoints } from "../train/checkpoint.ts";

export interface PpoCheckpointState {
  progress: PpoProgress;
  config: Record<string, unknown>;
  /** Metric records logged up to this step, so metrics.jsonl can be rewound on resume. */
  logged_steps: number;
}

/** Written last into a checkpoint: its presence marks the checkpoint complete. */
export const PPO_STATE = "ppo_state.json";

export async function savePpoCheckpoint(
  outputDir: string,
  save: { policyConfig: ModelConfig; policy: Params; valueConfig: ModelConfig; value: Params; optimizer: AdamWState; state: PpoCheckpointState; tokenizer?: Tokenizer },
): Promise<string> {
  const final = join(outputDir, `checkpoint-${save.state.progress.step}`);
  const tmp = join(outputDir, `.tmp-checkpoint-${save.state.progress.step}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await saveModel(join(tmp, "policy"), save.policyConfig, save.policy, save.tokenizer ? { tokenizer: save.tokenizer } : {});
  await saveModel(join(tmp, "value"), save.valueConfig, save.value, save.tokenizer ? { tokenizer: save.tokenizer } : {});
  const moments: TensorMap = new Map();
  for (const [which, tree] of [["exp_avg", save.optimizer.mu], ["exp_avg_sq", save.optimizer.nu]] as const) {
    for (const [name, a] of Object.entries(tree)) moments.set(`${which}.${name}`, { shape: [...a.shape], data: await toHost(keep(a)) });
  }
  await writeFile(join(tmp, "optimizer.safetensors"), serializeSafetensors(moments, { metadata: { format: "pt" } }));
  // Written last: its presence marks the checkpoint complete.
  await writeFile(join(tmp, PPO_STATE), JSON.stringify(save.state, null, 1) + "\n");
  await rm(final, { recursive: true, force: true });
  await rename(tmp, final);
  return final;
}

export function latestPpoCheckpoint(outputDir: string): string | null {
  return listCheckpoints(outputDir, PPO_STATE).at(-1)?.dir ?? null;
}

export async function loadPpoCheckpoint(dir: string): Promise<{ policy: LoadedModel; value: LoadedModel; optimizer: AdamWState; state: PpoCheckpointState }> {
  const statePath = join(dir, PPO_STATE);
  const state = JSON.parse(await readFile(statePath, "utf8")) as PpoCheckpointState;
  if (!state.progress || typeof state.progress.step !== "number") throw new Error(`${statePath}: not a PPO checkpoint state`);
  const policy = await loadModel(join(dir, "policy"));
  const value = await loadModel(join(dir, "value"));
  const optPath = join(dir, "optimizer.safetensors");
  const tensors = deserializeSafetensors(new Uint8Array(await readFile(optPath)), optPath).tensors;
  const mu: Params = {};
  const nu: Params = {};
  const restore = (prefix: string, params: Params) => {
    for (const [name, p] of Object.entries(params)) {
      for (const [which, target] of [["exp_avg", mu], ["exp_avg_sq", nu]] as const) {
        const t = tensors.get(`${which}.${prefix}${name}`);
        if (!t || t.shape.join(",") !== p.shape.join(",")) throw new Error(`${optPath}: ${which}.${prefix}${name} is missing or has the wrong shape`);
        target[prefix + name] = fromHost(t.data, t.shape);
      }
    }
  };
  restore("policy/", policy.params);
  restore("value/", value.params);
  return { policy, value, optimizer: { mu, nu }, state };
}
