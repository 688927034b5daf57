// What the offline training commands (sft, rm train, dpo, kto) share around train/trainer.ts: the
// flags of a run and its config, the causal-LM check, max_length clamped to the model's context,
// the memory plan's --dry-run and refusal, what a save carries, and running train(): its closing
// line, or a divergence as one line on stderr and exit code 1.
import { baseFlag, UsageError } from "./command.ts";
import { release } from "../engine/arrays.ts";
import type { Architecture } from "../models/architecture.ts";
import { isSequenceClassifier } from "../models/config.ts";
import { describeModel, type LoadedModel, type ModelDescription } from "../models/load.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { TrainerState } from "../train/checkpoint.ts";
import { configOverrides, resolveConfig, type Specs, type TrainingArguments } from "../train/config.ts";
import { checkPlan, formatPlan, memoryReport, type MemoryPlan } from "../train/memory-plan.ts";
import { DivergenceError, train, type TrainTask } from "../train/trainer.ts";

/** The flags of a training run besides --model and --data. */
export const trainingRunFlags = {
  output: { type: "string", help: "output directory <DIR>" },
  "eval-data": { type: "string", help: "held-out data (default: a seeded share of --data) <FILE>" },
  tokenizer: { type: "string", help: "tokenizer file or directory <PATH> (default: found beside or inside the model)" },
  config: { type: "string", help: "config file, JSON or YAML, with the fields below <FILE>" },
  resume: { type: "boolean", help: "continue from the latest checkpoint in DIR" },
  "dry-run": { type: "boolean", help: "print the engine memory plan for this run and exit" },
  ...baseFlag,
} as const;

/** The config: defaults < --config FILE < the flags that name its fields. */
export function readRunConfig<C extends object>(values: { config?: string | undefined }, defaults: C, specs: Specs<C>): C {
  return resolveConfig(defaults, specs, { ...(values.config ? { file: values.config } : {}), overrides: configOverrides(values, specs) });
}

/** The model at `path` (config only; `base` for an adapter's); refuses a sequence classifier where `trainer` needs a causal LM. */
export async function describeCausalLm(path: string, trainer: string, base?: string): Promise<ModelDescription> {
  const model = await describeModel(path, { base });
  if (isSequenceClassifier(model.config)) throw new UsageError(`${path} is a sequence classifier; ${trainer} needs a causal LM`);
  return model;
}

/** Lowers max_length to the model's context, saying so under the command's name. */
export function clampMaxLength(config: { max_length: number | null }, arch: Architecture, name: string): void {
  if (config.max_length !== null && config.max_length > arch.maxPositions) {
    process.stderr.write(`${name}: max_length ${config.max_length} is longer than the model's context; using ${arch.maxPositions}\n`);
    config.max_length = arch.maxPositions;
  }
}

/** Batches are padded with the tokenizer's pad token, else EOS. */
export function padIdOf(tokenizer: Tokenizer): number {
  return tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
}

/**
 * With --dry-run prints the plan and returns true (the command stops there); otherwise refuses a
 * run that would not fit, with the batch settings to lower (or --use_peft when `plans.lora`, the
 * run's plan with LoRA, fits).
 */
export function planOnly(plans: { memory: MemoryPlan; lora?: MemoryPlan }, dryRun: boolean | undefined, config: TrainingArguments & { max_length: number | null }): boolean {
  if (dryRun) {
    process.stdout.write(formatPlan(plans.memory));
    return true;
  }
  checkPlan(
    plans.memory,
    `lower per_device_train_batch_size (now ${config.per_device_train_batch_size}), per_device_eval_batch_size (now ${config.per_device_eval_batch_size}) or max_length (now ${config.max_length ?? "the model's context"}), raising gradient_accumulation_steps (now ${config.gradient_accumulation_steps}) to keep the effective batch`,
    plans.lora,
  );
  return false;
}

/** What a trained model is saved with: the starting model's config (or `modelConfig`), the tokenizer, generation_config.json. */
export function savedWith(model: LoadedModel, tokenizer: Tokenizer): Pick<TrainTask<unknown, unknown>, "modelConfig" | "tokenizer" | "generationConfig"> {
  return { modelConfig: model.config, tokenizer, ...(model.generationConfig ? { generationConfig: model.generationConfig } : {}) };
}

/**
 * Runs the task (consuming `params`) into `output`, then prints "<name>: done after N steps; " +
 * `outcome(state)` and the memory report. A divergence is one line, "rlhf <command>: …", and exit code 1.
 */
export async function runTraining<E, B>(
  run: { name: string; command: string; output: string; resume: boolean | undefined },
  task: TrainTask<E, B>,
  params: LoadedModel["params"],
  memory: MemoryPlan,
  outcome: (state: TrainerState) => string,
): Promise<number> {
  try {
    const result = await train(task, params, { outputDir: run.output, resume: run.resume ?? false, evaluateAtStart: true });
    release(result.params);
    process.stderr.write(`${run.name}: done after ${result.state.global_step} steps; ${outcome(result.state)}\n${run.name}: ${memoryReport(memory)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof DivergenceError) {
      process.stderr.write(`rlhf ${run.command}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
