// The LoRA settings a trainer takes, under TRL's ModelConfig names and with its defaults (r 16,
// alpha 32, dropout 0.05; target modules PEFT's default for the model_type when unset), and the
// PEFT LoraConfig they make for a model. One home: every trainer that can train an adapter spreads
// these fields and their specs (config.ts peftSpecs) into its own, as it does the optimizer's.
import { resolve } from "node:path";
import { InputError } from "../io/errors.ts";
import type { Architecture } from "../models/architecture.ts";
import type { LoadedModel } from "../models/load.ts";
import { initAdapter, resolveTargetModules, withAdapter, type LoraConfig } from "../models/lora.ts";
import type { Params } from "../models/types.ts";

export interface PeftFields {
  /** Train a LoRA adapter on the frozen model instead of the model itself. */
  use_peft: boolean;
  /** LoRA's rank r. */
  lora_r: number;
  /** LoRA's alpha: the update is scaled by lora_alpha / r. */
  lora_alpha: number;
  /** Dropout on the adapter's input during training. */
  lora_dropout: number;
  /** Modules to adapt by name (q_proj, v_proj, GPT-2's c_attn, …) or ["all-linear"]; null = PEFT's default for the model_type. */
  lora_target_modules: string[] | null;
  /** Modules trained whole and saved with the adapter (a reward model's score). */
  lora_modules_to_save: string[] | null;
  /** rsLoRA: scale by lora_alpha / √r instead. */
  use_rslora: boolean;
}

/** TRL's ModelConfig defaults. */
export const peftDefaults: PeftFields = {
  use_peft: false,
  lora_r: 16,
  lora_alpha: 32,
  lora_dropout: 0.05,
  lora_target_modules: null,
  lora_modules_to_save: null,
  use_rslora: false,
};

/** The fields: they fix what a run trains, so a resumed run must keep them. */
export const PEFT_FIELDS: readonly string[] = Object.keys(peftDefaults);

/**
 * The adapter a run trains on `arch` (get_peft_config in TRL): PEFT's LoraConfig with the target
 * modules resolved, fan_in_fan_out set for weights stored [in, out] (PEFT sets it for Conv1D),
 * and the base's path as base_model_name_or_path.
 */
export function loraConfigFor(fields: PeftFields, arch: Architecture, taskType: LoraConfig["task_type"], basePath: string): LoraConfig {
  return {
    task_type: taskType,
    r: fields.lora_r,
    lora_alpha: fields.lora_alpha,
    lora_dropout: fields.lora_dropout,
    target_modules: resolveTargetModules(arch, fields.lora_target_modules),
    modules_to_save: fields.lora_modules_to_save,
    fan_in_fan_out: arch.transposedForDecoding.length > 0,
    use_rslora: fields.use_rslora,
    base_model_name_or_path: basePath,
  };
}

/** A run that trains a LoRA adapter: the architecture that runs it, the fresh adapter, and the frozen base with its config. */
export interface AdapterRun {
  arch: Architecture;
  params: Params;
  adapter: { base: Params; config: LoraConfig };
}

/**
 * LoRA training on a loaded model: a fresh adapter (seeded) on the model's weights, which become
 * the frozen base, referred to by their absolute path. A model loaded from an adapter (merged into
 * its base) has no files of its own to be a base, so it is refused.
 */
export function adapterRun(model: LoadedModel, fields: PeftFields, taskType: LoraConfig["task_type"], seed: number): AdapterRun {
  if (model.adapter) throw new InputError(`--model ${model.adapter.dir} is a LoRA adapter; to train a new adapter on it, merge it first (rlhf merge) and pass the merged model`);
  const config = loraConfigFor(fields, model.arch, taskType, resolve(model.path));
  return { arch: withAdapter(model.arch, config), params: initAdapter(model.arch, config, model.params, seed), adapter: { base: model.params, config } };
}
