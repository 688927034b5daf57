// Hugging Face checkpoint directories as files: config.json, model.safetensors (or a sharded
// index), generation_config.json. What the names and the config mean is the models' business
// (models/checkpoint.ts); this reads and writes them as they are.
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeDirAtomic } from "./atomic.ts";
import { CheckpointError } from "./errors.ts";
import { stripBom } from "./text-file.ts";
import { readSafetensors, readShardedSafetensors, serializeSafetensors } from "./safetensors.ts";
import type { TensorMap } from "./tensors.ts";

export type JsonObject = Record<string, unknown>;

export interface HfDirectory {
  /** config.json as written. */
  configJson: JsonObject;
  /** Every stored tensor under its stored name. */
  tensors: TensorMap;
  /** The safetensors `__metadata__` (of every shard, merged): `format`, and aliases of tied weights some savers record. */
  metadata: Record<string, string>;
}

async function isFile(path: string): Promise<boolean> {
  try { return (await stat(path)).isFile(); } catch { return false; }
}

async function readJsonObject(path: string): Promise<JsonObject> {
  const text = stripBom(await readFile(path, "utf8"));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new CheckpointError(`${path}: expected a JSON object`);
  return json as JsonObject;
}

/** config.json of a checkpoint directory as a JSON object (errors name the file). */
export async function readConfigJson(dir: string): Promise<JsonObject> {
  const path = join(dir, "config.json");
  if (!(await isFile(path))) throw new CheckpointError(`not a Hugging Face checkpoint directory: ${path} not found`);
  return readJsonObject(path);
}

/** generation_config.json, or null when the directory has none (it is optional). */
export async function readGenerationConfigJson(dir: string): Promise<JsonObject | null> {
  const path = join(dir, "generation_config.json");
  return (await isFile(path)) ? readJsonObject(path) : null;
}

/** config.json and the weights (model.safetensors or model.safetensors.index.json) of `dir`. */
export async function readHfDirectory(dir: string): Promise<HfDirectory> {
  const configJson = await readConfigJson(dir);
  return { configJson, ...(await readHfWeights(dir)) };
}

/** The weights of `dir`: model.safetensors, else the shards model.safetensors.index.json names. */
export async function readHfWeights(dir: string): Promise<Omit<HfDirectory, "configJson">> {
  const single = join(dir, "model.safetensors");
  const index = join(dir, "model.safetensors.index.json");
  if (await isFile(single)) return readSafetensors(single);
  if (await isFile(index)) return readShardedSafetensors(index);
  if (await isFile(join(dir, "pytorch_model.bin")) || await isFile(join(dir, "pytorch_model.bin.index.json"))) {
    throw new CheckpointError(
      `${dir}: only pytorch_model.bin (pickle) found, which this project does not read; convert it in Python with ` +
        `AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True) (the default since transformers 4.35) to get model.safetensors`,
    );
  }
  throw new CheckpointError(`${dir}: no model.safetensors or model.safetensors.index.json`);
}

/**
 * Writes `dir` as one unit (see writeDirAtomic: an existing `dir` is replaced whole): config.json,
 * model.safetensors in float32 with `metadata`, and `extraFiles` (tokenizer.json, generation_config.json, ...).
 */
export async function writeHfDirectory(
  dir: string,
  configJson: JsonObject,
  tensors: TensorMap,
  options: { metadata?: Record<string, string>; extraFiles?: Record<string, string | Uint8Array> } = {},
): Promise<void> {
  const extraFiles = options.extraFiles ?? {};
  for (const name of ["config.json", "model.safetensors"]) {
    if (name in extraFiles) throw new Error(`writeHfDirectory(${dir}): extraFiles must not contain ${name}; it is written from the model`);
  }
  await writeDirAtomic(dir, {
    "config.json": JSON.stringify(configJson, null, 2) + "\n",
    "model.safetensors": serializeSafetensors(tensors, { metadata: options.metadata ?? { format: "pt" } }),
    ...extraFiles,
  });
}
