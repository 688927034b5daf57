import type { Command } from "../command.ts";
import { parseFlags, requireFlag, UsageError } from "../command.ts";
import { release } from "../../engine/arrays.ts";
import { isSequenceClassifier } from "../../models/config.ts";
import { describeModel, loadModel, resolveTokenizer, type LoadedModel, type ModelDescription } from "../../models/load.ts";
import { checkPlan, formatPlan, memoryReport } from "../../train/memory-plan.ts";
import { configFlags, configOverrides, defaultDPOConfig, dpoSpecs, normaliseFlagNames, resolveConfig, type DPOConfig } from "../../train/config.ts";
import { splitHeldOut } from "../../data/datasets.ts";
import { readDpoData } from "../../data/dpo-data.ts";
import { checkDPOConfig, dpoMaxLength, dpoMemoryPlan, dpoRowLength, dpoTask, fitDpoExamples, withReferenceLogps } from "../../train/dpo.ts";
import { readRefCache, REF_CACHE_FILE, refCacheFingerprint, writeRefCache } from "../../train/dpo-ref-cache.ts";
import { dpoUsesAverageLogps } from "../../algorithms/dpo.ts";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { DivergenceError, train } from "../../train/trainer.ts";

const usage = `Usage: rlhf dpo --model PATH --data FILE --output DIR [--ref-model PATH] [--eval-data FILE] [--config FILE] [--resume] [options]

Direct Preference Optimisation (TRL's DPOTrainer): raises the policy's log-odds of each chosen
completion over the rejected one, measured against a frozen reference model (the starting model,
or --ref-model), whose log-probs are computed once before training. loss_type: sigmoid (DPO, with
label_smoothing as cDPO), robust (unbiased under label noise), hinge (SLiC), ipo (IPO, on
length-averaged log-probs). Data: JSON lines with "prompt"+"chosen"+"rejected" (strings or
message lists), or only "chosen"+"rejected" (the shared beginning is the prompt), or the
rt-polarity folder (positive over negative, empty prompt). Only completion tokens are scored.
Without --eval-data, eval_split_ratio of the pairs is held out (seeded). Checkpoints go to
DIR/checkpoint-N every save_steps and at the end, the final model to DIR, metrics (rewards/chosen,
rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected, loss, and
eval_ versions) to DIR/metrics.jsonl; --resume continues from the latest checkpoint exactly.
Config fields are TRL's (defaults below), set by --config FILE (JSON or YAML) or by flags.`;

const flags = {
  model: { type: "string", help: "model to train: a llama2.c .bin file or a Hugging Face directory <PATH>" },
  "ref-model": { type: "string", help: "reference model (default: the starting --model, frozen) <PATH>" },
  data: { type: "string", help: "preference pairs: JSON lines (.jsonl, .jsonl.gz), .json, or the rt-polarity folder <FILE>" },
  output: { type: "string", help: "output directory <DIR>" },
  "eval-data": { type: "string", help: "held-out pairs (default: a seeded share of --data) <FILE>" },
  tokenizer: { type: "string", help: "tokenizer file or directory <PATH> (default: found beside or inside the model)" },
  config: { type: "string", help: "config file, JSON or YAML, with the fields below <FILE>" },
  resume: { type: "boolean", help: "continue from the latest checkpoint in DIR" },
  "dry-run": { type: "boolean", help: "print the engine memory plan for this run and exit" },
  ...configFlags(dpoSpecs, defaultDPOConfig),
} as const;

async function describeCausalLm(path: string): Promise<ModelDescription> {
  const model = await describeModel(path);
  if (isSequenceClassifier(model.config)) throw new UsageError(`${path} is a sequence classifier; DPO needs a causal LM`);
  return model;
}

/** The reference log-probs from the starting model (borrowed) or from --ref-model (loaded, used, released). */
async function referenceFor(model: LoadedModel, refPath: string | undefined) {
  if (!refPath) return { arch: model.arch, params: model.params, done: () => {} };
  const ref = await loadModel(refPath);
  return { arch: ref.arch, params: ref.params, done: () => release(ref.params) };
}

export const command: Command = {
  summary: "direct preference optimisation (sigmoid, ipo, hinge, robust) against a frozen reference",
  async run(argv) {
    const parsed = parseFlags(normaliseFlagNames(argv, dpoSpecs), usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const [modelPath, dataPath, output] = [requireFlag(v.model, "model"), requireFlag(v.data, "data"), requireFlag(v.output, "output")];
    const config: DPOConfig = resolveConfig(defaultDPOConfig, dpoSpecs, { ...(v.config ? { file: v.config } : {}), overrides: configOverrides(v, dpoSpecs) });
    checkDPOConfig(config);
    const described = await describeCausalLm(modelPath);
    const describedRef = v["ref-model"] ? await describeCausalLm(v["ref-model"]) : undefined;
    if (describedRef && describedRef.arch.vocabSize !== described.arch.vocabSize) {
      throw new UsageError(`--ref-model ${v["ref-model"]} has a vocabulary of ${describedRef.arch.vocabSize} tokens, the model ${described.arch.vocabSize}; they must share the tokenizer`);
    }
    const tokenizer = await resolveTokenizer(described, v.tokenizer);
    if (config.max_length !== null && config.max_length > described.arch.maxPositions) {
      process.stderr.write(`dpo: max_length ${config.max_length} is longer than the model's context; using ${described.arch.maxPositions}\n`);
      config.max_length = described.arch.maxPositions;
    }
    const load = (path: string) => {
      const { examples, truncated } = fitDpoExamples(readDpoData(path, tokenizer), config, described.arch);
      if (truncated > 0) process.stderr.write(`dpo: ${path}: cut ${truncated} pairs to max_length ${config.max_length ?? described.arch.maxPositions} (prompt ${config.max_prompt_length}, completion ${config.max_completion_length})\n`);
      return examples;
    };
    const all = load(dataPath);
    const split = v["eval-data"] ? { train: all, eval: load(v["eval-data"]) } : splitHeldOut(all, config.eval_split_ratio, config.seed);
    const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
    const memory = dpoMemoryPlan(described.arch, config, dpoRowLength([...split.train, ...split.eval], dpoMaxLength(config, described.arch)), describedRef?.arch);
    if (v["dry-run"]) {
      process.stdout.write(formatPlan(memory));
      return 0;
    }
    checkPlan(memory, `lower per_device_train_batch_size (now ${config.per_device_train_batch_size}), per_device_eval_batch_size (now ${config.per_device_eval_batch_size}) or max_length (now ${config.max_length ?? "the model's context"}), raising gradient_accumulation_steps (now ${config.gradient_accumulation_steps}) to keep the effective batch`);
    const model = await loadModel(modelPath);

    const total = split.train.length + split.eval.length;
    const referencePath = v["ref-model"] ?? modelPath;
    const settings = { average: dpoUsesAverageLogps(config.loss_type), max_length: dpoMaxLength(config, model.arch), padId };
    const fingerprint = refCacheFingerprint(referencePath, settings, split);
    let data = v.resume ? await readRefCache(output, fingerprint, split) : null;
    if (data) {
      process.stderr.write(`dpo: reference log-probs of ${total} pairs read from ${join(output, REF_CACHE_FILE)}\n`);
    } else {
      const what = `dpo: reference log-probs (${v["ref-model"] ?? "the starting model"})`;
      process.stderr.write(`${what}, ${total} pairs…\n`);
      const reference = await referenceFor(model, v["ref-model"]);
      const started = performance.now();
      const show = (done: number) => {
        if (process.stderr.isTTY) process.stderr.write(`\r${what}: ${done}/${total}`);
      };
      try {
        data = {
          train: await withReferenceLogps(reference.arch, reference.params, split.train, config, padId, (done) => show(done)),
          eval: await withReferenceLogps(reference.arch, reference.params, split.eval, config, padId, (done) => show(split.train.length + done)),
        };
      } finally {
        reference.done();
      }
      if (process.stderr.isTTY) process.stderr.write("\n");
      process.stderr.write(`dpo: reference log-probs took ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
      // Kept beside the checkpoints, so that --resume need not run the reference again.
      await mkdir(output, { recursive: true });
      await writeRefCache(output, fingerprint, referencePath, data);
    }
    process.stderr.write(`dpo: ${data.train.length} training pairs, ${data.eval.length} held out; loss_type ${config.loss_type}, beta ${config.beta}\n`);

    const task = dpoTask(model.arch, config, data, { modelConfig: model.config, tokenizer, ...(model.generationConfig ? { generationConfig: model.generationConfig } : {}) }, padId);
    try {
      const result = await train(task, model.params, { outputDir: output, resume: v.resume ?? false, evaluateAtStart: true });
      release(result.params);
      const last = result.state.log_history.filter((r) => "eval_rewards/accuracies" in r).at(-1);
      const summary = last ? ` (held-out reward accuracy ${last["eval_rewards/accuracies"]!.toFixed(4)}, margin ${last["eval_rewards/margins"]!.toFixed(4)})` : "";
      process.stderr.write(`dpo: done after ${result.state.global_step} steps; final model in ${output}${summary}\ndpo: ${memoryReport(memory)}\n`);
      return 0;
    } catch (err) {
      if (err instanceof DivergenceError) {
        process.stderr.write(`rlhf dpo: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  },
};
