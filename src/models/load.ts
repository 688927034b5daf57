// Loading and saving whole models: llama2.c files and Hugging Face directories in, Hugging Face
// directories out (the project's own checkpoints are HF directories plus training state).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { detectCheckpoint, type CheckpointFormat } from "../io/detect.ts";
import { CheckpointError } from "../io/errors.ts";
import { readConfigJson, readGenerationConfigJson, readHfWeights, writeHfDirectory, type JsonObject } from "../io/hf-dir.ts";
import { readLlama2c } from "../io/llama2c.ts";
import { refuseNonFinite } from "../io/finite.ts";
import type { TensorMap } from "../io/tensors.ts";
import { loadTokenizer } from "../tokenizers/load.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { initEngine } from "../engine/runtime.ts";
import { release } from "../engine/arrays.ts";
import { architectureFor, type Architecture } from "./architecture.ts";
import { checkpointFromParameters, configToJson, parametersFromCheckpoint } from "./checkpoint.ts";
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
  /** generation_config.json of an HF directory that has one (its eos_token_id may add stop tokens; see generation/eos.ts). */
  generationConfig?: GenerationConfig;
}

/** generation_config.json as written, with eos_token_id checked to be a token id or a list of them. */
export interface GenerationConfig extends JsonObject {
  eos_token_id?: number | number[] | null;
}

/** What a checkpoint is, without its weights: enough to plan memory and find the tokenizer. */
export type ModelDescription = Omit<LoadedModel, "params">;

/** A checkpoint's config and architecture, read without putting its weights on the engine. */
export async function describeModel(path: string): Promise<ModelDescription> {
  const format = await detectCheckpoint(path);
  if (format === "llama2c") {
    // A llama2.c file is its header and weights in one (and small); an HF directory has config.json.
    const config = parseConfig((await readLlama2c(path)).config, path);
    return { config, arch: architectureFor(config), path, format };
  }
  const config = parseConfig(await readConfigJson(path), join(path, "config.json"));
  return { config, arch: architectureFor(config), path, format, ...(await generationConfigOf(path)) };
}

export async function loadModel(path: string): Promise<LoadedModel> {
  await initEngine();
  const format = await detectCheckpoint(path);
  let config: ModelConfig;
  let tensors: TensorMap;
  let generation: Pick<LoadedModel, "generationConfig"> = {};
  if (format === "llama2c") {
    const file = await readLlama2c(path);
    config = parseConfig(file.config, path);
    tensors = file.tensors;
  } else {
    config = parseConfig(await readConfigJson(path), join(path, "config.json"));
    const stored = await readHfWeights(path);
    tensors = parametersFromCheckpoint(config, stored.tensors, stored.metadata, path);
    generation = await generationConfigOf(path);
  }
  refuseNonFinite(tensors, path);
  const arch = architectureFor(config);
  const params = paramsFromTensors(arch, tensors, path);
  return { config, arch, params, path, format, ...generation };
}

async function generationConfigOf(dir: string): Promise<Pick<LoadedModel, "generationConfig">> {
  const json = await readGenerationConfigJson(dir);
  if (json === null) return {};
  const eos = json.eos_token_id;
  const isId = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (eos !== undefined && eos !== null && !isId(eos) && !(Array.isArray(eos) && eos.length > 0 && eos.every(isId))) {
    throw new CheckpointError(`${join(dir, "generation_config.json")}: eos_token_id must be a token id, a non-empty list of token ids, or null, got ${JSON.stringify(eos)}`);
  }
  return { generationConfig: json as GenerationConfig };
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
      throw new CheckpointError(`${model.path} has no tokenizer.json; pass --tokenizer PATH`);
    }
    return checkVocab(await loadTokenizer(model.path), model, model.path);
  }
  const dir = dirname(model.path);
  const candidates = [`tok${model.arch.vocabSize}.bin`, "tokenizer.bin"].map((f) => join(dir, f)).filter((p) => existsSync(p));
  for (const candidate of candidates) {
    const tok = await loadTokenizer(candidate);
    if (tok.vocabSize === model.arch.vocabSize) return tok;
  }
  throw new CheckpointError(
    `no tokenizer with ${model.arch.vocabSize} tokens beside ${model.path} (looked for tok${model.arch.vocabSize}.bin, tokenizer.bin); pass --tokenizer PATH`,
  );
}

function checkVocab(tok: Tokenizer, model: ModelDescription, source: string): Tokenizer {
  if (tok.vocabSize > model.arch.vocabSize) {
    throw new CheckpointError(`${source}: tokenizer has ${tok.vocabSize} tokens but the model's vocabulary has ${model.arch.vocabSize}`);
  }
  return tok;
}

/**
 * Saves a Hugging Face directory transformers loads unchanged (+ tokenizer files when given).
 * generation_config.json is `generationConfig` when given (a loaded model's, kept as it was), else
 * written from the config. `extraFiles` carry training state for the project's own checkpoints.
 */
export async function saveModel(
  dir: string,
  config: ModelConfig,
  params: Params,
  options: { tokenizer?: Tokenizer; generationConfig?: GenerationConfig; extraFiles?: Record<string, string | Uint8Array> } = {},
): Promise<void> {
  const { tensors, metadata } = checkpointFromParameters(config, await paramsToTensors(params));
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
  const generation = options.generationConfig ?? {
    bos_token_id: config.bos_token_id,
    eos_token_id: config.eos_token_id,
    ...(options.tokenizer?.padTokenId != null ? { pad_token_id: options.tokenizer.padTokenId } : {}),
  };
  files["generation_config.json"] ??= JSON.stringify(generation, null, 2) + "\n";
  await writeHfDirectory(dir, configToJson(config), tensors, { metadata, extraFiles: files });
}
