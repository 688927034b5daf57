import type { Command } from "../command.ts";
import { parseFlags, requireFlag, UsageError } from "../command.ts";
import { release } from "../../engine/arrays.ts";
import { isSequenceClassifier } from "../../models/config.ts";
import { describeModel, loadModel, resolveTokenizer, type LoadedModel, type ModelDescription } from "../../models/load.ts";
import { checkPlan, formatPlan, memoryReport } from "../../train/memory-plan.ts";
import { configFlags, configOverrides, normaliseFlagNames, resolveConfig } from "../../train/config.ts";
import { checkKTOConfig, defaultKTOTrainingConfig, ktoSpecs, type KTOTrainingConfig } from "../../train/kto-config.ts";
import { splitHeldOut } from "../../data/datasets.ts";
import { readKtoData, type KtoExample } from "../../data/kto-data.ts";
import { fitKtoExamples, ktoMaxLength, ktoMeans, ktoMemoryPlan, ktoRowLength, ktoTask, ktoWeightAdvice, withKlSplits, withReferenceLogps } from "../../train/kto.ts";
import { DivergenceError, train } from "../../train/trainer.ts";

const usage = `Usage: rlhf kto --model PATH --data FILE --output DIR [--ref-model PATH] [--eval-data FILE] [--config FILE] [--resume] [options]

Kahneman-Tversky Optimisation (TRL's KTOTrainer): learns from completions labelled desirable or
undesirable, without pairs. Each one's log-ratio to a frozen reference model (the starting model,
or --ref-model) is pushed above (desirable) or below (undesirable) a reference point, the policy's
KL from the reference estimated in each batch on prompts paired with other examples' completions.
loss_type: kto, or apo_zero_unpaired (reference point 0). Data: JSON lines with "prompt" +
"completion" + "label" (true = desirable; strings or message lists), or preference pairs
("prompt"? + "chosen" + "rejected", each one desirable and one undesirable example), or the
rt-polarity folder (positive sentences desirable). Only completion tokens are scored; the reference
log-probs are computed once before training. Without --eval-data, eval_split_ratio of the records
is held out (seeded; a pair stays whole). Checkpoints go to DIR/checkpoint-N every save_steps and at
the end, the final model to DIR, metrics (kl, rewards/chosen_sum, rewards/rejected_sum,
logps/chosen_sum, logps/rejected_sum, count/chosen, count/rejected, loss, and eval_ versions) to
DIR/metrics.jsonl; --resume continues from the latest checkpoint exactly. Config fields are TRL's
(defaults below), set by --config FILE (JSON or YAML) or by flags.`;

const flags = {
  model: { type: "string", help: "model to train: a llama2.c .bin file or a Hugging Face directory <PATH>" },
  "ref-model": { type: "string", help: "reference model (default: the starting --model, frozen) <PATH>" },
  data: { type: "string", help: "labelled completions or preference pairs: JSON lines (.jsonl, .jsonl.gz), .json, or the rt-polarity folder <FILE>" },
  output: { type: "string", help: "output directory <DIR>" },
  "eval-data": { type: "string", help: "held-out examples (default: a seeded share of --data) <FILE>" },
  tokenizer: { type: "string", help: "tokenizer file or directory <PATH> (default: found beside or inside the model)" },
  config: { type: "string", help: "config file, JSON or YAML, with the fields below <FILE>" },
  resume: { type: "boolean", help: "continue from the latest checkpoint in DIR" },
  "dry-run": { type: "boolean", help: "print the engine memory plan for this run and exit" },
  ...configFlags(ktoSpecs, defaultKTOTrainingConfig),
} as const;

async function describeCausalLm(path: string): Promise<ModelDescription> {
  const model = await describeModel(path);
  if (isSequenceClassifier(model.config)) throw new UsageError(`${path} is a sequence classifier; KTO needs a causal LM`);
  return model;
}

/** The reference log-probs from the starting model (borrowed) or from --ref-model (loaded, used, released). */
async function referenceFor(model: LoadedModel, refPath: string | undefined) {
  if (!refPath) return { arch: model.arch, params: model.params, done: () => {} };
  const ref = await loadModel(refPath);
  return { arch: ref.arch, params: ref.params, done: () => release(ref.params) };
}

export const command: Command = {
  summary: "Kahneman-Tversky optimisation on desirable/undesirable completions (or unpaired preference pairs)",
  async run(argv) {
    const parsed = parseFlags(normaliseFlagNames(argv, ktoSpecs), usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const [modelPath, dataPath, output] = [requireFlag(v.model, "model"), requireFlag(v.data, "data"), requireFlag(v.output, "output")];
    const config: KTOTrainingConfig = resolveConfig(defaultKTOTrainingConfig, ktoSpecs, { ...(v.config ? { file: v.config } : {}), overrides: configOverrides(v, ktoSpecs) });
    checkKTOConfig(config);
    const described = await describeCausalLm(modelPath);
    const describedRef = v["ref-model"] ? await describeCausalLm(v["ref-model"]) : undefined;
    if (describedRef && describedRef.arch.vocabSize !== described.arch.vocabSize) {
      throw new UsageError(`--ref-model ${v["ref-model"]} has a vocabulary of ${describedRef.arch.vocabSize} tokens, the model ${described.arch.vocabSize}; they must share the tokenizer`);
    }
    const tokenizer = await resolveTokenizer(described, v.tokenizer);
    if (config.max_length !== null && config.max_length > described.arch.maxPositions) {
      process.stderr.write(`kto: max_length ${config.max_length} is longer than the model's context; using ${described.arch.maxPositions}\n`);
      config.max_length = described.arch.maxPositions;
    }
    // Records, not examples, are split, so both halves of a pair land on the same side.
    const records = readKtoData(dataPath, tokenizer);
    const split = v["eval-data"] ? { train: records, eval: readKtoData(v["eval-data"], tokenizer) } : splitHeldOut(records, config.eval_split_ratio, config.seed);
    const fit = (examples: KtoExample[], what: string) => {
      const { examples: fitted, truncated } = fitKtoExamples(examples, config, described.arch);
      if (truncated > 0) process.stderr.write(`kto: ${what}: cut ${truncated} examples to max_length ${config.max_length ?? described.arch.maxPositions} (prompt ${config.max_prompt_length}, completion ${config.max_completion_length})\n`);
      return fitted;
    };
    const examples = { train: fit(split.train.flat(), dataPath), eval: fit(split.eval.flat(), v["eval-data"] ?? `${dataPath} (held out)`) };
    const advice = ktoWeightAdvice(examples.train, config);
    if (advice) process.stderr.write(`kto: ${advice}\n`);
    const paired = withKlSplits(examples, config, described.arch);
    const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
    const memory = ktoMemoryPlan(described.arch, config, ktoRowLength([...paired.train, ...paired.eval], ktoMaxLength(config, described.arch)), describedRef?.arch);
    if (v["dry-run"]) {
      process.stdout.write(formatPlan(memory));
      return 0;
    }
    checkPlan(memory, `lower per_device_train_batch_size (now ${config.per_device_train_batch_size}), per_device_eval_batch_size (now ${config.per_device_eval_batch_size}) or max_length (now ${config.max_length ?? "the model's context"}), raising gradient_accumulation_steps (now ${config.gradient_accumulation_steps}) to keep the effective batch`);
    const model = await loadModel(modelPath);

    // Computed again on --resume: the same batches give the same bits, so the run still continues exactly.
    const total = paired.train.length + paired.eval.length;
    const what = `kto: reference log-probs (${v["ref-model"] ?? "the starting model"})`;
    process.stderr.write(`${what}, ${total} examples…\n`);
    const reference = await referenceFor(model, v["ref-model"]);
    const started = performance.now();
    const show = (done: number) => {
      if (process.stderr.isTTY) process.stderr.write(`\r${what}: ${done}/${total}`);
    };
    let data;
    try {
      data = {
        train: await withReferenceLogps(reference.arch, reference.params, paired.train, config, padId, (done) => show(done)),
        eval: await withReferenceLogps(reference.arch, reference.params, paired.eval, config, padId, (done) => show(paired.train.length + done)),
      };
    } finally {
      reference.done();
    }
    if (process.stderr.isTTY) process.stderr.write("\n");
    process.stderr.write(`kto: reference log-probs took ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    const count = (xs: KtoExample[]) => `${xs.filter((e) => e.label).length} desirable + ${xs.filter((e) => !e.label).length} undesirable`;
    process.stderr.write(`kto: ${data.train.length} training examples (${count(data.train)}), ${data.eval.length} held out; loss_type ${config.loss_type}, beta ${config.beta}\n`);

    const task = ktoTask(model.arch, config, data, { modelConfig: model.config, tokenizer, ...(model.generationConfig ? { generationConfig: model.generationConfig } : {}) }, padId);
    try {
      const result = await train(task, model.params, { outputDir: output, resume: v.resume ?? false, evaluateAtStart: true });
      release(result.params);
      const last = result.state.log_history.filter((r) => "eval_kl" in r).at(-1);
      const m = last ? ktoMeans(last, "eval_") : null;
      const summary = m ? ` (held-out rewards/chosen ${m.chosen.toFixed(4)}, rewards/rejected ${m.rejected.toFixed(4)}, margin ${m.margin.toFixed(4)}, kl ${m.kl.toFixed(4)})` : "";
      process.stderr.write(`kto: done after ${result.state.global_step} steps; final model in ${output}${summary}\nkto: ${memoryReport(memory)}\n`);
      return 0;
    } catch (err) {
      if (err instanceof DivergenceError) {
        process.stderr.write(`rlhf kto: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  },
};
