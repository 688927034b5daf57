import type { Command } from "../command.ts";
import { parseFlags, requireFlag } from "../command.ts";
import { clampMaxLength, describeCausalLm, padIdOf, planOnly, readRunConfig, runTraining, savedWith, trainingRunFlags } from "../offline-command.ts";
import { loadModel, resolveTokenizer } from "../../models/load.ts";
import { configFlags, defaultSFTConfig, normaliseFlagNames, sftSpecs } from "../../train/config.ts";
import { readSftData, splitHeldOut } from "../../data/datasets.ts";
import { paddedLength, sftMemoryPlan, sftRows, sftTask } from "../../train/sft.ts";
import { adapterRun, runPlans } from "../../train/peft-config.ts";

const usage = `Usage: rlhf sft --model PATH --data FILE --output DIR [--eval-data FILE] [--config FILE] [--resume] [options]

Supervised fine-tuning (TRL's SFTTrainer): next-token loss on the completion tokens of each
demonstration, the prompt masked (--completion_only_loss false trains on every token). Data: JSON
lines with "prompt"+"completion", "messages" or "text" (or self-instruct's instruction/instances).
Without --eval-data, eval_split_ratio of the records is held out (seeded). Checkpoints go to
DIR/checkpoint-N every save_steps and at the end, the final model to DIR, metrics to
DIR/metrics.jsonl; --resume continues from the latest checkpoint exactly where the run stopped.
--use_peft trains a LoRA adapter instead (TRL's lora_* fields): checkpoints and DIR are then PEFT
adapter directories (adapter_config.json, adapter_model.safetensors) on the unchanged --model.
Config fields are TRL's (defaults below), set by --config FILE (JSON or YAML) or by flags.`;

const flags = {
  model: { type: "string", help: "model to fine-tune: a llama2.c .bin file, a Hugging Face directory or a LoRA adapter directory (merged) <PATH>" },
  data: { type: "string", help: "training data, JSON lines (.jsonl, .jsonl.gz) <FILE>" },
  ...trainingRunFlags,
  "skip-invalid": { type: "boolean", help: "skip malformed records (counted; the first one's file:line and reason on stderr) instead of stopping" },
  ...configFlags(sftSpecs, defaultSFTConfig),
} as const;

export const command: Command = {
  summary: "supervised fine-tuning on demonstrations (prompt masked), with checkpoints and --resume",
  async run(argv) {
    const parsed = parseFlags(normaliseFlagNames(argv, sftSpecs), usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const [modelPath, dataPath, output] = [requireFlag(v.model, "model"), requireFlag(v.data, "data"), requireFlag(v.output, "output")];
    const config = readRunConfig(v, defaultSFTConfig, sftSpecs);
    const described = await describeCausalLm(modelPath, "SFT", v.base);
    const tokenizer = await resolveTokenizer(described, v.tokenizer);
    clampMaxLength(config, described.arch, "sft");
    const read = { skipInvalid: v["skip-invalid"] ?? false, warn: (m: string) => process.stderr.write(`sft: ${m}\n`) };
    const all = readSftData(dataPath, tokenizer, read);
    const split = v["eval-data"] ? { train: all, eval: readSftData(v["eval-data"], tokenizer, read) } : splitHeldOut(all, config.eval_split_ratio, config.seed);
    const data = { train: sftRows(split.train, config), eval: sftRows(split.eval, { ...config, packing: false }) };
    process.stderr.write(`sft: ${split.train.length} training examples (${data.train.length} rows${config.packing ? ", packed" : ""}), ${data.eval.length} held out\n`);
    const length = paddedLength([...data.train, ...data.eval], config);
    const plans = runPlans(config, described.arch, "CAUSAL_LM", true, (adapter, layout) => sftMemoryPlan(described.arch, config, length, adapter, layout.headBudget));
    if (planOnly(plans, v["dry-run"], config)) return 0;
    const memory = plans.memory;
    const model = await loadModel(modelPath, { base: v.base });
    // TRL's SFTTrainer keeps dropout on.
    const lora = config.use_peft ? adapterRun(model, config, "CAUSAL_LM", { seed: config.seed, dropout: true }) : null;
    const task = { ...sftTask(lora?.arch ?? model.arch, config, data, savedWith(model, tokenizer), padIdOf(tokenizer)), headBudget: plans.layout.headBudget, ...(lora ? { adapter: lora.adapter } : {}) };
    return runTraining({ name: "sft", command: "sft", output, resume: v.resume }, task, lora?.params ?? model.params, memory, (state) => {
      const evals = state.log_history.filter((r) => "eval_loss" in r);
      return `final model in ${output}${evals.length ? ` (held-out completion loss ${evals[0]!.eval_loss!.toFixed(4)} -> ${evals.at(-1)!.eval_loss!.toFixed(4)})` : ""}`;
    });
  },
};
