// Loading and saving whole models: llama2.c files and Hugging Face directories in, Hugging Face
// directories out (the project's own checkpoints are HF directories plus training state).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { detectCheckpoint, type CheckpointFormat } from "../io/detect.ts";
import { loadHfDirectory, readConfigJson, saveHfDirectory } from "../io/hf-dir.ts";
import { readLlama2c } from "../io/llama2c.ts";
import type { TensorMap } from "../io/tensors.ts";
import { loadTokenizer } from "../tokenizers/load.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { initEngine } from "../engine/runtime.ts";
import { release } from "../engine/arrays.ts";
import { architectureFor, type Architecture } from "./architecture.ts";
import { parseConfig, type ModelConfig } from "./config.ts";
import { paramsFromTensors, paramsToTensors } from "./params.ts";
import type { Params } from "./types.ts";

export interface LoadedModel {
  config: ModelConfig;
  arch: Architecture;
  /** Device parameters, Hugging Face names; includes `score.weight` for sequence classifiers. */
  params: Params;
  path: string;
  format: CheckpointFormat;
}

/** What a checkpoint is, without its weights: enough to plan memory and find the tokenizer. */
export type ModelDescription = Omit<LoadedModel, "params">;

/** A checkpoint's config and architecture, read without putting its weights on the engine. */
export async function describeModel(path: string): Promise<ModelDescription> {
  const format = await detectCheckpoint(path);
  // A llama2.c file is its header and weights in one (and small); an HF directory has config.json.
  const config = format === "llama2c" ? (await readLlama2c(path)).config : parseConfig(await readConfigJson(path), join(path, "config.json"));
  return { config, arch: architectureFor(config), path, format };
}

export async function loadModel(path: string): Promise<LoadedModel> {
  await initEngine();
  const format = await detectCheckpoint(path);
  let config: ModelConfig;
  let tensors: TensorMap;
  if (format === "llama2c") ({ config, tensors } = await readLlama2c(path));
  else ({ config, tensors } = await loadHfDirectory(path));
  const arch = architectureFor(config);
  const params = paramsFromTensors(arch, tensors, path);
  return { config, arch, params, path, format };
}

export function disposeModel(model: LoadedModel): void {
  release(model.params);
}

/**
 * The tokenizer for a model: an explicit path, else tokenizer files inside an HF directory, else for
 * a llama2.c file the tok*.bin / tokenizer.bin beside it whose vocabulary size matches the model's.
 */
export async function resolveTokenizer(model: ModelDescription, explicit?: string): Promise<Tokenizer> {
  if (explicit) return checkVocab(await loadTokenizer(explicit), model, explicit);
  if (model.format === "hf-dir") {
    if (!existsSync(join(model.path, "tokenizer.json")) && !existsSync(join(model.path, "vocab.json"))) {
      throw new Error(`${model.path} has no tokenizer.json; pass --tokenizer PATH`);
    }
    return checkVocab(await loadTokenizer(model.path), model, model.path);
  }
  const dir = dirname(model.path);
  const candidates = [`tok${model.arch.vocabSize}.bin`, "tokenizer.bin"].map((f) => join(dir, f)).filter((p) => existsSync(p));
  for (const candidate of candidates) {
    const tok = await loadTokenizer(candidate);
    if (tok.vocabSize === model.arch.vocabSize) return tok;
  }
  throw new Error(
    `no tokenizer with ${model.arch.vocabSize} tokens beside ${model.path} (looked for tok${model.arch.vocabSize}.bin, tokenizer.bin); pass --tokenizer PATH`,
  );
}

function checkVocab(tok: Tokenizer, model: ModelDescription, source: string): Tokenizer {
  if (tok.vocabSize > model.arch.vocabSize) {
    throw new Error(`${source}: tokenizer has ${tok.vocabSize} tokens but the model's vocabulary has ${model.arch.vocabSize}`);
  }
  return tok;
}

/**
 * Saves a Hugging Face directory transformers loads unchanged (+ tokenizer files when given).
 * `extraFiles` carry training state for the project's own checkpoints.
 */
export async function saveModel(
  dir: string,
  config: ModelConfig,
  params: Params,
  options: { tokenizer?: Tokenizer; extraFiles?: Record<string, string | Uint8Array> } = {},
): Promise<void> {
  const tensors = await paramsToTensors(params);
  const files: Record<string, string | Uint8Array> = { ...(options.extraFiles ?? {}) };
  if (options.tokenizer) {
    // Tokenizers save through the file system; collect their files first so the directory stays atomic.
    const { mkdtemp, readdir, readFile, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const tmp = await mkdtemp(join(tmpdir(), "rlhf-tok-"));
    try {
      await options.tokenizer.save(tmp);
      for (const f of await readdir(tmp)) files[f] = await readFile(join(tmp, f));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  const generation = {
    bos_token_id: config.bos_token_id,
    eos_token_id: config.eos_token_id,
    ...(options.tokenizer?.padTokenId != null ? { pad_token_id: options.tokenizer.padTokenId } : {}),
  };
  files["generation_config.json"] ??= JSON.stringify(generation, null, 2) + "\n";
  await saveHfDirectory(dir, config, tensors, files);
}
