// A LoRA adapter as PEFT's save_pretrained writes it: adapter_config.json (LoraConfig's fields)
// and adapter_model.safetensors, whose keys are the PeftModel's parameter names with the adapter
// name dropped: `base_model.model.` + the transformers module + `.lora_A.weight`, and a saved
// module's own parameter (`base_model.model.score.weight`). Reading accepts what PEFT writes and
// refuses the variants that compute something else (DoRA, trained biases, per-layer ranks, …).
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeDirAtomic } from "../io/atomic.ts";
import { CheckpointError } from "../io/errors.ts";
import { readSafetensors, serializeSafetensors } from "../io/safetensors.ts";
import type { TensorMap } from "../io/tensors.ts";
import type { LoraConfig } from "./lora.ts";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

/** PeftModel.base_model (the LoraModel) . model (the transformers model). */
const KEY_PREFIX = "base_model.model.";

/** A directory PEFT's from_pretrained would take for an adapter. */
export function isAdapterDir(path: string): boolean {
  return existsSync(join(path, ADAPTER_CONFIG));
}

type Json = Record<string, unknown>;

/** Settings PEFT may record that change what the adapter computes; each must be at its default (JSON.stringify of the accepted values). */
const UNSUPPORTED: Record<string, { accepted: unknown[]; what: string }> = {
  use_dora: { accepted: [false, null], what: "DoRA" },
  bias: { accepted: ["none", null], what: "trained biases" },
  lora_bias: { accepted: [false, null], what: "a bias on lora_B" },
  rank_pattern: { accepted: [{}, null], what: "per-module ranks" },
  alpha_pattern: { accepted: [{}, null], what: "per-module alphas" },
  layers_to_transform: { accepted: [null], what: "adapting some layers only" },
  layer_replication: { accepted: [null], what: "replicated layers" },
  exclude_modules: { accepted: [null, []], what: "excluded modules" },
  trainable_token_indices: { accepted: [null], what: "trainable tokens" },
  target_parameters: { accepted: [null, []], what: "adapted nn.Parameters" },
};

/** Inits that rewrite the base weights (PiSSA, OLoRA, LoftQ, CorDA): the adapter then needs that modified base. */
const BASE_CHANGING_INIT = /^(pissa|olora|loftq|corda)/;

/** adapter_config.json as a LoraConfig; refuses other PEFT methods and the settings this project does not compute. */
export async function readAdapterConfig(dir: string): Promise<LoraConfig> {
  const path = join(dir, ADAPTER_CONFIG);
  let json: Json;
  try {
    json = JSON.parse(await readFile(path, "utf8")) as Json;
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new Error("expected a JSON object");
  } catch (err) {
    throw new CheckpointError(`${path}: not a readable adapter config (${(err as Error).message})`);
  }
  const fail = (field: string, expected: string): never => {
    throw new CheckpointError(`${path}: ${field} ${expected}, got ${JSON.stringify(json[field])}`);
  };
  if (json.peft_type !== "LORA") fail("peft_type", "must be \"LORA\" (only LoRA adapters are supported)");
  for (const [field, { accepted, what }] of Object.entries(UNSUPPORTED)) {
    if (field in json && !accepted.some((a) => JSON.stringify(a) === JSON.stringify(json[field]))) fail(field, `asks for ${what}, which is not supported`);
  }
  if (typeof json.init_lora_weights === "string" && BASE_CHANGING_INIT.test(json.init_lora_weights)) fail("init_lora_weights", "changed the base weights at init; convert the adapter to plain LoRA in PEFT first");
  const task = json.task_type ?? "CAUSAL_LM";
  if (task !== "CAUSAL_LM" && task !== "SEQ_CLS") fail("task_type", "must be CAUSAL_LM or SEQ_CLS");
  const r = json.r;
  if (!Number.isInteger(r) || (r as number) < 1) fail("r", "must be a positive integer");
  const alpha = json.lora_alpha ?? 8;
  if (typeof alpha !== "number" || !(alpha > 0)) fail("lora_alpha", "must be a positive number");
  const dropout = json.lora_dropout ?? 0;
  if (typeof dropout !== "number" || dropout < 0 || dropout >= 1) fail("lora_dropout", "must be a number in [0, 1)");
  const isNames = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string");
  const targets = json.target_modules;
  if (typeof targets !== "string" && !(isNames(targets) && (targets as string[]).length > 0)) fail("target_modules", "must be a list of module names or a regular expression");
  const saved = json.modules_to_save ?? null;
  if (saved !== null && !isNames(saved)) fail("modules_to_save", "must be a list of module names or null");
  const base = json.base_model_name_or_path ?? null;
  if (base !== null && typeof base !== "string") fail("base_model_name_or_path", "must be a string");
  const flag = (field: string) => {
    const v = json[field] ?? false;
    return typeof v === "boolean" ? v : fail(field, "must be true or false");
  };
  return {
    task_type: task as LoraConfig["task_type"],
    r: r as number,
    lora_alpha: alpha as number,
    lora_dropout: dropout as number,
    target_modules: targets as LoraConfig["target_modules"],
    modules_to_save: saved as string[] | null,
    fan_in_fan_out: flag("fan_in_fan_out"),
    use_rslora: flag("use_rslora"),
    base_model_name_or_path: base as string | null,
  };
}

/** The adapter's tensors under this project's parameter names: PEFT's prefix dropped, and an adapter name (`lora_A.default.weight`) if the saver kept one. */
export async function readAdapterTensors(dir: string): Promise<TensorMap> {
  const path = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(path)) {
    const pickle = existsSync(join(dir, "adapter_model.bin")) ? " (only adapter_model.bin, a pickle, which this project does not read; save it again with safe_serialization=True)" : "";
    throw new CheckpointError(`${dir}: no ${ADAPTER_WEIGHTS}${pickle}`);
  }
  const out: TensorMap = new Map();
  for (const [key, tensor] of (await readSafetensors(path)).tensors) {
    if (!key.startsWith(KEY_PREFIX)) throw new CheckpointError(`${path}: ${key} is not a PEFT key (expected the prefix ${KEY_PREFIX})`);
    out.set(key.slice(KEY_PREFIX.length).replace(/\.(lora_[AB])\.[^.]+\.weight$/, ".$1.weight"), tensor);
  }
  return out;
}

/** adapter_config.json: PEFT's LoraConfig fields, ours and the defaults of the rest, as save_pretrained writes them. */
export function adapterConfigJson(config: LoraConfig): Json {
  return {
    peft_type: "LORA",
    task_type: config.task_type,
    base_model_name_or_path: config.base_model_name_or_path,
    revision: null,
    inference_mode: true,
    r: config.r,
    target_modules: config.target_modules,
    lora_alpha: config.lora_alpha,
    lora_dropout: config.lora_dropout,
    fan_in_fan_out: config.fan_in_fan_out,
    bias: "none",
    use_rslora: config.use_rslora,
    modules_to_save: config.modules_to_save,
    init_lora_weights: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    megatron_config: null,
    megatron_core: "megatron.core",
    loftq_config: {},
    use_dora: false,
    layer_replication: null,
    auto_mapping: null,
  };
}

/**
 * Writes DIR as one unit (io/atomic.ts): adapter_config.json, adapter_model.safetensors (float32,
 * PEFT's keys) and `extraFiles` (tokenizer files, a checkpoint's optimizer state and trainer state).
 */
export async function writeAdapterDirectory(dir: string, config: LoraConfig, tensors: TensorMap, extraFiles: Record<string, string | Uint8Array> = {}): Promise<void> {
  const keyed: TensorMap = new Map([...tensors].map(([name, t]) => [KEY_PREFIX + name, t]));
  await writeDirAtomic(dir, {
    ...extraFiles,
    [ADAPTER_CONFIG]: JSON.stringify(adapterConfigJson(config), null, 2) + "\n",
    [ADAPTER_WEIGHTS]: serializeSafetensors(keyed, { metadata: { format: "pt" } }),
  });
}
