// Loading and saving whole models: llama2.c files, Hugging Face directories and PEFT LoRA adapters
// (over their base) in, Hugging Face directories out (the project's own checkpoints are HF or
// adapter directories plus training state).
import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { detectCheckpoint, type CheckpointFormat } from "../io/detect.ts";
import { CheckpointError } from "../io/errors.ts";
import { readConfigJson, readGenerationConfigJson, readHfWeights, writeHfDirectory, type JsonObject } from "../io/hf-dir.ts";
import { readLlama2c } from "../io/llama2c.ts";
import { refuseNonFinite } from "../io/finite.ts";
import type { TensorMap } from "../io/tensors.ts";
import { loadTokenizer } from "../tokenizers/load.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { initEngine } from "../engine/runtime.ts";
import { fromHost, release } from "../engine/arrays.ts";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, isAdapterDir, readAdapterConfig, readAdapterTensors, writeAdapterDirectory } from "./adapter-files.ts";
import { architectureFor, asSequenceClassifier, defaultPadId, type Architecture } from "./architecture.ts";
import { checkpointFromParameters, configToJson, parametersFromCheckpoint } from "./checkpoint.ts";
import { isSequenceClassifier, parseConfig, type ModelConfig } from "./config.ts";
import { adapterShapes, mergeAdapter, type LoraConfig } from "./lora.ts";
import { checkedTensors, paramsFromTensors, paramsToTensors } from "./params.ts";
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
  /**
   * Set when the path was a LoRA adapter's directory: `path`, `config` and the rest are its base's,
   * and the params are the base with the adapter merged in (the base's files are left as they are).
   */
  adapter?: { dir: string; config: LoraConfig };
}

export interface LoadOptions {
  /** The base model of an adapter directory, instead of its adapter_config.json's base_model_name_or_path. */
  base?: string | undefined;
}

/** generation_config.json as written, with eos_token_id checked to be a token id or a list of them. */
export interface GenerationConfig extends JsonObject {
  eos_token_id?: number | number[] | null;
}

/** What a checkpoint is, without its weights: enough to plan memory and find the tokenizer. */
export type ModelDescription = Omit<LoadedModel, "params">;

/** A checkpoint's config and architecture, read without putting its weights on the engine. */
export async function describeModel(path: string, options: LoadOptions = {}): Promise<ModelDescription> {
  if (isAdapterDir(path)) {
    const config = await readAdapterConfig(path);
    const base = await describeModel(basePathOf(path, config, options.base));
    return { ...base, ...modelUnder(config, base), adapter: { dir: path, config } };
  }
  const format = await detectCheckpoint(path);
  if (format === "llama2c") {
    // A llama2.c file is its header and weights in one (and small); an HF directory has config.json.
    const config = parseConfig((await readLlama2c(path)).config, path);
    return { config, arch: architectureFor(config), path, format };
  }
  const config = parseConfig(await readConfigJson(path), join(path, "config.json"));
  return { config, arch: architectureFor(config), path, format, ...(await generationConfigOf(path)) };
}

export async function loadModel(path: string, options: LoadOptions = {}): Promise<LoadedModel> {
  await initEngine();
  if (isAdapterDir(path)) return loadMergedAdapter(path, options);
  const { tensors, ...described } = await readCheckpoint(path);
  return { ...described, params: paramsFromTensors(described.arch, tensors, path) };
}

/** A llama2.c file's or HF directory's weights on the host (parameter names, shapes checked, finite), without the engine. */
export async function readCheckpoint(path: string): Promise<ModelDescription & { tensors: TensorMap }> {
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
  return { config, arch, path, format, ...generation, tensors: checkedTensors(arch, tensors, path) };
}

/**
 * An adapter's base: `explicit` (--base), else base_model_name_or_path, a relative one read from
 * the adapter's directory first and then from the working directory (where transformers looks).
 */
function basePathOf(dir: string, config: LoraConfig, explicit: string | undefined): string {
  const file = join(dir, ADAPTER_CONFIG);
  const named = explicit ?? config.base_model_name_or_path;
  if (!named) throw new CheckpointError(`${file} names no base_model_name_or_path; pass --base PATH`);
  const candidates = explicit || isAbsolute(named) ? [named] : [resolve(dir, named), resolve(named)];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new CheckpointError(explicit ? `--base ${explicit}: not found` : `${file}: base_model_name_or_path ${JSON.stringify(named)} is not a local path (looked in ${candidates.join(" and ")}); pass --base PATH`);
  if (isAdapterDir(found)) throw new CheckpointError(`${found} is itself an adapter; an adapter's base must be a full model (merge it first with rlhf merge)`);
  return found;
}

/**
 * The model an adapter runs as on its base: the base's own, or for a SEQ_CLS adapter over a
 * causal LM the base as a sequence classifier (as PEFT's AutoModelForSequenceClassification builds
 * it), whose `score` head the adapter carries in modules_to_save. A causal-LM adapter over a
 * classifier is refused.
 */
function modelUnder(adapter: LoraConfig, base: Pick<LoadedModel, "config" | "arch" | "path">): Pick<LoadedModel, "config" | "arch"> {
  const classifier = isSequenceClassifier(base.config);
  if (adapter.task_type === "SEQ_CLS" && !classifier) {
    const config = asSequenceClassifier(base.config, base.config.pad_token_id ?? defaultPadId(base.config));
    return { config, arch: architectureFor(config) };
  }
  if (adapter.task_type === "CAUSAL_LM" && classifier) throw new CheckpointError(`a CAUSAL_LM adapter does not fit the base ${base.path}, a ${base.config.architectures.join(", ")}`);
  return { config: base.config, arch: base.arch };
}

/** The adapter's base with the adapter merged in (W + s·B·A), checked tensor by tensor against what the config asks for. */
async function loadMergedAdapter(dir: string, options: LoadOptions): Promise<LoadedModel> {
  const loaded = await loadAdapterOnBase(dir, options);
  const { adapter, config } = loaded.adapter;
  return { ...loaded, params: mergeAdapter(loaded.arch, config, loaded.params, adapter), adapter: { dir, config } };
}

/**
 * An adapter directory and its base, unmerged: the model it runs as (modelUnder) with the base's
 * weights (a causal LM's head dropped under a classifier), and the adapter's tensors checked
 * against what its config asks for.
 */
export async function loadAdapterOnBase(dir: string, options: LoadOptions = {}): Promise<LoadedModel & { adapter: { dir: string; config: LoraConfig; adapter: Params } }> {
  const config = await readAdapterConfig(dir);
  const loaded = await loadModel(basePathOf(dir, config, options.base));
  let under: Pick<LoadedModel, "config" | "arch">;
  try {
    under = modelUnder(config, loaded);
  } catch (err) {
    release(loaded.params);
    throw new CheckpointError(`${join(dir, ADAPTER_CONFIG)}: ${(err as Error).message}`);
  }
  const base = { ...loaded, ...under, params: onlyParamsOf(under.arch, loaded.params) };
  const file = join(dir, ADAPTER_WEIGHTS);
  const tensors = await readAdapterTensors(dir);
  const shapes = adapterShapes(base.arch, config);
  const unexpected = [...tensors.keys()].filter((k) => !(k in shapes));
  if (unexpected.length > 0) {
    release(base.params);
    throw new CheckpointError(`${file}: ${unexpected[0]} is not a tensor of an adapter with this config (target_modules ${JSON.stringify(config.target_modules)}, modules_to_save ${JSON.stringify(config.modules_to_save)})${unexpected.length > 1 ? `, nor are ${unexpected.length - 1} more` : ""}`);
  }
  const adapter = paramsFromTensors({ ...base.arch, paramShapes: shapes }, tensors, file);
  return { ...base, adapter: { dir, config, adapter } };
}

/** The parameters `arch` has, the others (a causal LM's head under a classifier) released. */
function onlyParamsOf(arch: Architecture, params: Params): Params {
  const kept: Params = {};
  for (const [name, p] of Object.entries(params)) {
    if (name in arch.paramShapes) kept[name] = p;
    else p.dispose();
  }
  return kept;
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
  // An adapter saved with its tokenizer (as TRL saves one) uses it; otherwise its base's.
  if (model.adapter && hasTokenizerFiles(model.adapter.dir)) return checkVocab(await loadTokenizer(model.adapter.dir), model, model.adapter.dir);
  if (model.format === "hf-dir") {
    if (!hasTokenizerFiles(model.path)) {
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

function hasTokenizerFiles(dir: string): boolean {
  return existsSync(join(dir, "tokenizer.json")) || existsSync(join(dir, "vocab.json"));
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
  const files: Record<string, string | Uint8Array> = { ...(options.extraFiles ?? {}), ...(await tokenizerFiles(options.tokenizer)) };
  const generation = options.generationConfig ?? {
    bos_token_id: config.bos_token_id,
    eos_token_id: config.eos_token_id,
    ...(options.tokenizer?.padTokenId != null ? { pad_token_id: options.tokenizer.padTokenId } : {}),
  };
  files["generation_config.json"] ??= JSON.stringify(generation, null, 2) + "\n";
  await writeHfDirectory(dir, configToJson(config), tensors, { metadata, extraFiles: files });
}

/**
 * Saves a LoRA adapter as PEFT's save_pretrained does (adapter-files.ts), with the tokenizer's
 * files beside it as TRL saves them; `params` are the adapter's (models/lora.ts names).
 */
export async function saveAdapter(dir: string, config: LoraConfig, params: Params, options: { tokenizer?: Tokenizer | undefined; extraFiles?: Record<string, string | Uint8Array> } = {}): Promise<void> {
  await writeAdapterDirectory(dir, config, await paramsToTensors(params), { ...(options.extraFiles ?? {}), ...(await tokenizerFiles(options.tokenizer)) });
}

/** An adapter's own parameters (no base), as a training run resumes them. */
export async function loadAdapterParams(dir: string): Promise<Params> {
  await initEngine();
  return Object.fromEntries([...(await readAdapterTensors(dir))].map(([name, t]) => [name, fromHost(t.data, t.shape)]));
}

/** A tokenizer's files by name. Tokenizers save through the file system; collecting them first keeps a directory write atomic. */
async function tokenizerFiles(tokenizer: Tokenizer | undefined): Promise<Record<string, Uint8Array>> {
  if (!tokenizer) return {};
  const { mkdtemp, readdir, readFile, rm } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const tmp = await mkdtemp(join(tmpdir(), "rlhf-tok-"));
  try {
    await tokenizer.save(tmp);
    const files: Record<string, Uint8Array> = {};
    for (const f of await readdir(tmp)) files[f] = await readFile(join(tmp, f));
    return files;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
