// Hugging Face checkpoint directories: config.json + model.safetensors (or a sharded index).
// What we write is what `AutoModelForCausalLM.from_pretrained(dir)` expects, and what we read is
// normalised to the names our models use, so loading is a key-by-key copy.
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseConfig, type ModelConfig } from "../models/config.ts";
import { writeDirAtomic } from "./atomic.ts";
import { readSafetensors, readShardedSafetensors, serializeSafetensors } from "./safetensors.ts";
import type { TensorMap } from "./tensors.ts";

export interface HfCheckpoint {
  config: ModelConfig;
  tensors: TensorMap;
  /** config.json as written, including fields ModelConfig does not model (tokenizer ids, dropout, ...). */
  configJson: Record<string, unknown>;
}

/** Written into config.json; transformers only warns when a checkpoint claims a newer version than its own. */
const TRANSFORMERS_VERSION = "4.46.0";

async function isFile(path: string): Promise<boolean> {
  try { return (await stat(path)).isFile(); } catch { return false; }
}

/** config.json of a checkpoint directory as a JSON object (errors name the file). */
export async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new Error(`not a Hugging Face checkpoint directory: ${path} not found`);
    throw err;
  }
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new Error("expected a JSON object");
    return json as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Brings checkpoint names to the ones our models use:
 * - GPT-2 checkpoints saved from `GPT2Model` (the hub's `gpt2` among them) lack the `transformer.` prefix;
 * - GPT-2's `attn.bias`/`attn.masked_bias` and Llama's `rotary_emb.inv_freq` are recomputable buffers,
 *   not weights (transformers ignores them on load too);
 * - a tied `lm_head.weight` duplicates the embedding and is dropped.
 */
function normaliseNames(config: ModelConfig, tensors: TensorMap, source: string): TensorMap {
  let out = tensors;
  if (config.model_type === "gpt2" && ![...tensors.keys()].some((k) => k.startsWith("transformer."))) {
    out = new Map([...tensors].map(([k, t]) => [/^(lm_head|score)\./.test(k) ? k : `transformer.${k}`, t]));
  }
  const buffers = config.model_type === "gpt2" ? /^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/ : /\.rotary_emb\.inv_freq$/;
  for (const k of out.keys()) if (buffers.test(k)) out.delete(k);

  const causalLm = config.architectures.some((a) => a === "LlamaForCausalLM" || a === "GPT2LMHeadModel");
  if (config.tie_word_embeddings) out.delete("lm_head.weight");
  else if (causalLm && !out.has("lm_head.weight")) {
    throw new Error(`${source}: tie_word_embeddings is false but the checkpoint has no lm_head.weight`);
  }
  return out;
}

/** Loads config.json and the weights (model.safetensors or model.safetensors.index.json) from `dir`. */
export async function loadHfDirectory(dir: string): Promise<HfCheckpoint> {
  const configJson = await readConfigJson(dir);
  const config = parseConfig(configJson, join(dir, "config.json"));

  const single = join(dir, "model.safetensors");
  const index = join(dir, "model.safetensors.index.json");
  let tensors: TensorMap;
  if (await isFile(single)) tensors = (await readSafetensors(single)).tensors;
  else if (await isFile(index)) tensors = (await readShardedSafetensors(index)).tensors;
  else if (await isFile(join(dir, "pytorch_model.bin"))) {
    throw new Error(`${dir}: only pytorch_model.bin (pickle) found; save the model with safe_serialization=True (the default since transformers 4.35) to get model.safetensors`);
  } else throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json`);
  return { config, tensors: normaliseNames(config, tensors, dir), configJson };
}

/** The config.json transformers expects: our fields plus the bookkeeping fields it writes itself. */
export function configToJson(config: ModelConfig): Record<string, unknown> {
  const { architectures, model_type, ...rest } = config;
  return { architectures, model_type, ...rest, torch_dtype: "float32", transformers_version: TRANSFORMERS_VERSION };
}

/**
 * Writes `dir` as one unit (see writeDirAtomic: an existing `dir` is replaced whole):
 * config.json, model.safetensors in float32, and `extraFiles` (tokenizer.json, generation_config.json, ...).
 */
export async function saveHfDirectory(
  dir: string,
  config: ModelConfig,
  tensors: TensorMap,
  extraFiles: Record<string, string | Uint8Array> = {},
): Promise<void> {
  for (const name of ["config.json", "model.safetensors"]) {
    if (name in extraFiles) throw new Error(`saveHfDirectory(${dir}): extraFiles must not contain ${name}; it is written from the model`);
  }
  // transformers re-ties lm_head to the embedding on load; storing both would be a shared tensor it warns about.
  const weights = config.tie_word_embeddings ? new Map([...tensors].filter(([k]) => k !== "lm_head.weight")) : tensors;
  await writeDirAtomic(dir, {
    "config.json": JSON.stringify(configToJson(config), null, 2) + "\n",
    "model.safetensors": serializeSafetensors(weights, { metadata: { format: "pt" } }),
    ...extraFiles,
  });
}
