import type { Command } from "../command.ts";
import { parseFlags, requireFlag, UsageError } from "../command.ts";
import { release } from "../../engine/arrays.ts";
import { isSequenceClassifier } from "../../models/config.ts";
import { describeModel, loadModel, resolveTokenizer } from "../../models/load.ts";
import { checkPlan, formatPlan, memoryReport } from "../../train/memory-plan.ts";
import { configFlags, configOverrides, defaultSFTConfig, normaliseFlagNames, resolveConfig, sftSpecs } from "../../train/config.ts";
import { readSftData, splitHeldOut } from "../../data/datasets.ts";
import { paddedLength, sftMemoryAdvice, sftMemoryPlan, sftRows, sftTask } from "../../train/sft.ts";
import { DivergenceError, train } from "../../train/trainer.ts";

const usage = `Usage: rlhf sft --model PATH --data FILE --output DIR [--eval-data FILE] [--config FILE] [--resume] [options]

Supervised fine-tuning (TRL's SFTTrainer): next-token loss on the completion tokens of each
demonstration, the prompt masked (--completion_only_loss false trains on every token). Data: JSON
lines with "prompt"+"completion", "messages" or "text" (or self-instruct's instruction/instances).
Without --eval-data, eval_split_ratio of the records is held out (seeded). Checkpoints go to
DIR/checkpoint-N every save_steps and at the end, the final model to DIR, metrics to
DIR/metrics.jsonl; --resume continues from the latest checkpoint exactly where the run stopped.
Config fields are TRL's (defaults below), set by --config FILE (JSON or YAML) or by flags.`;

const flags = {
  model: { type: "string", help: "model to fine-tune: a llama2.c .bin file or a Hugging Face directory <PATH>" },
  data: { type: "string", help: "training data, JSON lines (.jsonl, .jsonl.gz) <FILE>" },
  output: { type: "string", help: "output directory <DIR>" },
  "eval-data": { type: "string", help: "held-out data (default: a seeded share of --data) <FILE>" },
  tokenizer: { type: "string", help: "tokenizer file or directory <PATH> (default: found beside or inside the model)" },
  config: { type: "string", help: "config file, JSON or YAML, with the fields below <FILE>" },
  resume: { type: "boolean", help: "continue from the latest checkpoint in DIR" },
  "skip-invalid": { type: "boolean", help: "skip malformed records (counted; the first one's file:line and reason on stderr) instead of stopping" },
  "dry-run": { type: "boolean", help: "print the engine memory plan for this run and exit" },
  ...configFlags(sftSpecs, defaultSFTConfig),
} as const;

export const command: Command = {
  summary: "supervised fine-tuning on demonstrations (prompt masked), with checkpoints and --resume",
  async run(argv) {
    const parsed = parseFlags(normaliseFlagNames(argv, sftSpecs), usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const [modelPath, dataPath, output] = [requireFlag(v.model, "model"), requireFlag(v.data, "data"), requireFlag(v.output, "output")];
    const config = resolveConfig(defaultSFTConfig, sftSpecs, { ...(v.config ? { file: v.config } : {}), overrides: configOverrides(v, sftSpecs) });
    const described = await describeModel(modelPath);
    if (isSequenceClassifier(described.config)) throw new UsageError(`${modelPath} is a sequence classifier; SFT needs a causal LM`);
    const tokenizer = await resolveTokenizer(described, v.tokenizer);
    if (config.max_length > described.arch.maxPositions) {
      process.stderr.write(`sft: max_length ${config.max_length} is longer than the model's context; using ${described.arch.maxPositions}\n`);
      config.max_length = described.arch.maxPositions;
    }
    const read = { skipInvalid: v["skip-invalid"] ?? false, warn: (m: string) => process.stderr.write(`sft: ${m}\n`) };
    const all = readSftData(dataPath, tokenizer, read);
    const split = v["eval-data"] ? { train: all, eval: readSftData(v["eval-data"], tokenizer, read) } : splitHeldOut(all, config.eval_split_ratio, config.seed);
    const data = { train: sftRows(split.train, config), eval: sftRows(split.eval, { ...config, packing: false }) };
    process.stderr.write(`sft: ${split.train.length} training examples (${data.train.length} rows${config.packing ? ", packed" : ""}), ${data.eval.length} held out\n`);
    const memory = sftMemoryPlan(described.arch, config, paddedLength([...data.train, ...data.eval], config));
    if (v["dry-run"]) {
      process.stdout.write(formatPlan(memory));
      return 0;
    }
    checkPlan(memory, sftMemoryAdvice(config));
    const model = await loadModel(modelPath);
    const padId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
    const task = sftTask(model.arch, config, data, { modelConfig: model.config, tokenizer, ...(model.generationConfig ? { generationConfig: model.generationConfig } : {}) }, padId);
    try {
      const result = await train(task, model.params, { outputDir: output, resume: v.resume ?? false, evaluateAtStart: true });
      release(result.params);
      const evals = result.state.log_history.filter((r) => "eval_loss" in r);
      const summary = evals.length ? ` (held-out completion loss ${evals[0]!.eval_loss!.toFixed(4)} -> ${evals.at(-1)!.eval_loss!.toFixed(4)})` : "";
      process.stderr.write(`sft: done after ${result.state.global_step} steps; final model in ${output}${summary}\nsft: ${memoryReport(memory)}\n`);
      return 0;
    } catch (err) {
      if (err instanceof DivergenceError) {
        process.stderr.write(`rlhf sft: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  },
};
