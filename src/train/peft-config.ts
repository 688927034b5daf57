// The LoRA settings a trainer takes, under TRL's ModelConfig names and with its defaults (r 16,
// alpha 32, dropout 0.05; target modules PEFT's default for the model_type when unset), and the
// PEFT LoraConfig they make for a model. One home: every trainer that can train an adapter spreads
// these fields and their specs (config.ts peftSpecs) into its own, as it does the optimizer's.
import { resolve } from "node:path";
import { InputError } from "../io/errors.ts";
import type { Architecture } from "../models/architecture.ts";
import type { LoadedModel } from "../models/load.ts";
import { initAdapter, LoraError, resolveTargetModules, withAdapter, type LoraConfig } from "../models/lora.ts";
import type { Params } from "../models/types.ts";
import { SCORE_HEAD } from "../models/architecture.ts";
import { adapterShape, planLayout, type AdapterShape, type MemoryPlan, type PassLayout } from "./memory-plan.ts";

/** The sequence classifier's head module (transformers' `score`), which a SEQ_CLS adapter trains whole. */
const SCORE_MODULE = SCORE_HEAD.slice(0, -".weight".length);

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
 * TRL's disable_dropout: dropout off in the trained model (the only dropout here is LoRA's). TRL's
 * DPO, KTO, reward and online-DPO configs default it to true, GRPO's and RLOO's to false; PPO's
 * trainer always turns dropout off, and SFT always keeps it.
 */
export interface DropoutField {
  disable_dropout: boolean;
}

/**
 * The adapter a run trains on `arch` (get_peft_config in TRL): PEFT's LoraConfig with the target
 * modules resolved, fan_in_fan_out set for weights stored [in, out] (PEFT sets it for Conv1D),
 * and the base's path as base_model_name_or_path.
 */
export function loraConfigFor(fields: PeftFields, arch: Architecture, taskType: LoraConfig["task_type"], basePath: string): LoraConfig {
  // PEFT trains a sequence classifier's head whole and adds it to modules_to_save itself.
  const saved = taskType === "SEQ_CLS" ? [...new Set([...(fields.lora_modules_to_save ?? []), SCORE_MODULE])] : fields.lora_modules_to_save;
  return {
    task_type: taskType,
    r: fields.lora_r,
    lora_alpha: fields.lora_alpha,
    lora_dropout: fields.lora_dropout,
    target_modules: resolveTargetModules(arch, fields.lora_target_modules),
    modules_to_save: saved,
    fan_in_fan_out: arch.transposedForDecoding.length > 0,
    use_rslora: fields.use_rslora,
    base_model_name_or_path: basePath,
  };
}

/** The adapter's memory numbers for a run that trains one with these fields (no weights needed). */
export function plannedAdapter(arch: Architecture, fields: PeftFields, taskType: LoraConfig["task_type"], dropout: boolean): AdapterShape {
  return adapterShape(arch, loraConfigFor(fields, arch, taskType, ""), dropout);
}

/** A run's memory plan, the pass layout it assumes (the LM head's block size, rows in parts), and for full fine-tuning the plan with --use_peft (which a refusal may suggest). */
export interface RunPlans {
  memory: MemoryPlan;
  layout: PassLayout;
  lora?: MemoryPlan;
}

/**
 * A run's plans from `planFor` (given the adapter when the run trains one, and the pass layout:
 * the first that fits, see planLayout; `canPartRows`: the run's loss may take its rows in parts).
 */
export function runPlans(
  fields: PeftFields,
  arch: Architecture,
  taskType: LoraConfig["task_type"],
  dropout: boolean,
  planFor: (adapter: AdapterShape | undefined, layout: PassLayout) => MemoryPlan,
  canPartRows = false,
): RunPlans {
  const withAdapter = (adapter?: AdapterShape) => planLayout((layout) => planFor(adapter, layout), canPartRows);
  if (fields.use_peft) return withAdapter(plannedAdapter(arch, fields, taskType, dropout));
  const full = withAdapter();
  try {
    return { ...full, lora: withAdapter(plannedAdapter(arch, fields, taskType, dropout)).memory };
  } catch (err) {
    // LoRA settings that would not apply to this model do not concern a full fine-tuning run.
    if (err instanceof LoraError) return full;
    throw err;
  }
}

/** A run that trains a LoRA adapter: the architecture that runs it, the fresh adapter, and the frozen base with its config. */
export interface AdapterRun {
  arch: Architecture;
  params: Params;
  adapter: { base: Params; config: LoraConfig };
}

/**
 * LoRA training on a model: a fresh adapter (seeded) on its weights, which become the frozen base
 * (see adapterArch).
 */
export function adapterRun(
  model: Pick<LoadedModel, "arch" | "params" | "path" | "adapter">,
  fields: PeftFields,
  taskType: LoraConfig["task_type"],
  options: { seed: number; dropout: boolean },
): AdapterRun {
  const { arch, config } = adapterArch(model, fields, taskType, options.dropout);
  return { arch, params: initAdapter(model.arch, config, model.params, options.seed), adapter: { base: model.params, config } };
}

/**
 * The adapter a run trains on a model, and the architecture that trains it. The base is referred
 * to by the absolute path of the model's files (`model.path`: a sequence classifier made from a
 * causal LM keeps the causal LM's path, as PEFT records it). `dropout` false trains without
 * lora_dropout (TRL's disable_dropout) while the saved config keeps its value, as TRL's does. A
 * model loaded from an adapter (merged into its base) has no files of its own to be a base: refused.
 */
export function adapterArch(model: Pick<LoadedModel, "arch" | "path" | "adapter">, fields: PeftFields, taskType: LoraConfig["task_type"], dropout: boolean): { arch: Architecture; config: LoraConfig } {
  if (model.adapter) throw new InputError(`${model.adapter.dir} is a LoRA adapter; to train a new adapter on it, merge it first (rlhf merge) and pass the merged model`);
  const config = loraConfigFor(fields, model.arch, taskType, resolve(model.path));
  return { arch: withAdapter(model.arch, dropout ? config : { ...config, lora_dropout: 0 }), config };
}
