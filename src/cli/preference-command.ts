// The command of every reference-based offline preference trainer (`rlhf dpo`, `rlhf kto`): flags
// → config → the examples of --data (and --eval-data, else a seeded held-out share of the records)
// cut to the length limits → the memory plan (--dry-run) → the reference model's log-probs (the
// starting model's or --ref-model's), computed once with progress and kept in
// DIR/<name>_ref_logps.json, which --resume reads back → train() → a closing summary. An algorithm
// supplies what is its own (PreferenceAlgorithm): usage, config, reader, example preparation, task.
import type { Command } from "./command.ts";
import { parseFlags, requireFlag, UsageError } from "./command.ts";
import { clampMaxLength, describeCausalLm, padIdOf, planOnly, readRunConfig, runTraining, savedWith, trainingRunFlags } from "./offline-command.ts";
import { release } from "../engine/arrays.ts";
import { splitHeldOut } from "../data/datasets.ts";
import type { DpoLengths } from "../data/dpo-data.ts";
import type { Architecture } from "../models/architecture.ts";
import { loadModel, resolveTokenizer, type LoadedModel } from "../models/load.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { configFlags, normaliseFlagNames, type Specs } from "../train/config.ts";
import type { MetricRecord } from "../train/metrics-log.ts";
import type { PreferenceTrainingArguments } from "../train/preference-config.ts";
import { fitExamples, preferenceMaxLength, preferenceMemoryPlan, preferenceRowLength, referenceLogps, type PreferenceLayout } from "../train/preference.ts";
import { readRefCache, refCacheFile, refCacheFingerprint, writeRefCache, type Splits } from "../train/reference-cache.ts";
import type { TrainTask } from "../train/trainer.ts";
import { adapterRun, runPlans } from "../train/peft-config.ts";
import { join } from "node:path";
import { mkdir } from "node:fs/promises";

type Prompted = { prompt: readonly number[] };

/**
 * One trainer's part: R are the examples as read (grouped by record, so that a held-out split
 * keeps a record's examples together), E the examples as prepared for its rows, I an example with
 * its reference log-probs, B its device batch.
 */
export interface PreferenceAlgorithm<C extends PreferenceTrainingArguments, R, E extends Prompted, I, B> {
  name: "dpo" | "kto";
  summary: string;
  usage: string;
  /** --data's help, and what one example is called in messages ("pairs"). */
  dataHelp: string;
  unit: string;
  defaults: C;
  specs: Specs<NoInfer<C>>;
  /** What the field specs cannot check; throws a ConfigError. */
  check(config: NoInfer<C>): void;
  read(path: string, tokenizer: Tokenizer): R[][];
  fit(example: R, limits: DpoLengths): { example: R; truncated: boolean };
  /** The fitted splits made ready for their rows (KTO: the mismatched completions); `say` prints a line. */
  prepare(data: Splits<R>, config: NoInfer<C>, arch: Architecture, say: (line: string) => void): Splits<E>;
  layout(config: NoInfer<C>): PreferenceLayout<E>;
  withReference(example: E, logps: readonly number[]): I;
  task(arch: Architecture, config: NoInfer<C>, data: Splits<I>, save: ReturnType<typeof savedWith>, padId: number): TrainTask<I, B>;
  /** The line before training: the examples and the loss settings. */
  describe(data: Splits<I>, config: NoInfer<C>): string;
  /** The closing line's held-out results, from the last evaluation record ("" without one). */
  outcome(history: MetricRecord[]): string;
}

export function preferenceCommand<C extends PreferenceTrainingArguments, R, E extends Prompted, I, B>(algorithm: PreferenceAlgorithm<C, R, E, I, B>): Command {
  const { name, specs } = algorithm;
  const flags = {
    model: { type: "string", help: "model to train: a llama2.c .bin file or a Hugging Face directory <PATH>" },
    "ref-model": { type: "string", help: "reference model (default: the starting --model, frozen) <PATH>" },
    data: { type: "string", help: algorithm.dataHelp },
    ...trainingRunFlags,
    ...configFlags(specs, algorithm.defaults),
  } as const;
  const say = (line: string) => process.stderr.write(`${name}: ${line}\n`);

  return {
    summary: algorithm.summary,
    async run(argv) {
      const parsed = parseFlags(normaliseFlagNames(argv, specs), algorithm.usage, flags);
      if (!parsed) return 0;
      const v = parsed.values;
      const [modelPath, dataPath, output] = [requireFlag(v.model, "model"), requireFlag(v.data, "data"), requireFlag(v.output, "output")];
      const refPath = v["ref-model"];
      const config = readRunConfig(v, algorithm.defaults, specs);
      algorithm.check(config);
      const trainer = name.toUpperCase();
      const described = await describeCausalLm(modelPath, trainer, v.base);
      const describedRef = refPath ? await describeCausalLm(refPath, trainer, v.base) : undefined;
      if (describedRef && describedRef.arch.vocabSize !== described.arch.vocabSize) {
        throw new UsageError(`--ref-model ${refPath} has a vocabulary of ${describedRef.arch.vocabSize} tokens, the model ${described.arch.vocabSize}; they must share the tokenizer`);
      }
      const arch = described.arch;
      const tokenizer = await resolveTokenizer(described, v.tokenizer);
      clampMaxLength(config, arch, name);
      const maxLength = preferenceMaxLength(config, arch);

      const evalPath = v["eval-data"];
      const records = algorithm.read(dataPath, tokenizer);
      const split = evalPath ? { train: records, eval: algorithm.read(evalPath, tokenizer) } : splitHeldOut(records, config.eval_split_ratio, config.seed);
      const fit = (groups: R[][], what: string) => {
        const { examples, truncated } = fitExamples(groups.flat(), algorithm.fit, config, arch);
        if (truncated > 0) say(`${what}: cut ${truncated} ${algorithm.unit} to max_length ${maxLength} (prompt ${config.max_prompt_length}, completion ${config.max_completion_length})`);
        return examples;
      };
      const examples = algorithm.prepare({ train: fit(split.train, dataPath), eval: fit(split.eval, evalPath ?? `${dataPath} (held out)`) }, config, arch, say);
      const layout = algorithm.layout(config);
      const all = [...examples.train, ...examples.eval];
      const rowsPerExample = Math.max(1, ...all.map((e) => layout.completions(e).length));
      const rowLength = preferenceRowLength(all, layout, maxLength);
      const dropout = !config.disable_dropout;
      const plans = runPlans(
        config,
        arch,
        "CAUSAL_LM",
        dropout,
        (adapter, layout) => preferenceMemoryPlan(arch, rowsPerExample, config, rowLength, { ...(describedRef ? { reference: describedRef.arch } : {}), ...(adapter ? { adapter } : {}), ...layout }),
        rowsPerExample > 1,
      );
      if (planOnly(plans, v["dry-run"], config)) return 0;
      const model = await loadModel(modelPath, { base: v.base });

      const padId = padIdOf(tokenizer);
      const cache = { path: join(output, refCacheFile(name)), reference: refPath ?? modelPath };
      const fingerprint = refCacheFingerprint(cache.reference, { average: layout.average, max_length: maxLength, padId }, layout, examples);
      const total = all.length;
      let logps = v.resume ? await readRefCache(cache.path, fingerprint, { train: examples.train.length, eval: examples.eval.length }) : null;
      if (logps) say(`reference log-probs of ${total} ${algorithm.unit} read from ${cache.path}`);
      else {
        logps = await scoreWithReference(name, algorithm.unit, { model, refPath, base: v.base }, examples, layout, { maxLength, batchSize: config.per_device_eval_batch_size, padId });
        // Kept beside the checkpoints, so that --resume need not run the reference again.
        await mkdir(output, { recursive: true });
        await writeRefCache(cache.path, fingerprint, cache.reference, logps);
      }
      const attach = (split: E[], scores: number[][]) => split.map((e, i) => algorithm.withReference(e, scores[i]!));
      const data = { train: attach(examples.train, logps.train), eval: attach(examples.eval, logps.eval) };
      say(algorithm.describe(data, config));

      // LoRA: the reference log-probs above are the base's (TRL's reference with the adapter off).
      const lora = config.use_peft ? adapterRun(model, config, "CAUSAL_LM", { seed: config.seed, dropout }) : null;
      const task = { ...algorithm.task(lora?.arch ?? model.arch, config, data, savedWith(model, tokenizer), padId), ...plans.layout, ...(lora ? { adapter: lora.adapter } : {}) };
      const outcome = (state: { log_history: MetricRecord[] }) => `final ${lora ? "adapter" : "model"} in ${output}${algorithm.outcome(state.log_history)}`;
      return runTraining({ name, command: name, output, resume: v.resume }, task, lora?.params ?? model.params, plans.memory, outcome);
    },
  };
}

/**
 * The reference's log-probs of both splits, with a progress count on a terminal and the time
 * taken: the starting model's (borrowed) or --ref-model's (loaded, used, released).
 */
async function scoreWithReference<E extends Prompted>(
  name: string,
  unit: string,
  models: { model: LoadedModel; refPath: string | undefined; base: string | undefined },
  examples: Splits<E>,
  layout: PreferenceLayout<E>,
  options: { maxLength: number; batchSize: number; padId: number },
): Promise<Splits<number[]>> {
  const total = examples.train.length + examples.eval.length;
  const what = `${name}: reference log-probs (${models.refPath ?? "the starting model"})`;
  process.stderr.write(`${what}, ${total} ${unit}…\n`);
  const reference = models.refPath ? await loadModel(models.refPath, { base: models.base }) : models.model;
  const started = performance.now();
  const show = (done: number) => {
    if (process.stderr.isTTY) process.stderr.write(`\r${what}: ${done}/${total}`);
  };
  try {
    const train = await referenceLogps(reference.arch, reference.params, examples.train, layout, options, show);
    const heldOut = await referenceLogps(reference.arch, reference.params, examples.eval, layout, options, (done) => show(examples.train.length + done));
    if (process.stderr.isTTY) process.stderr.write("\n");
    process.stderr.write(`${name}: reference log-probs took ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    return { train, eval: heldOut };
  } finally {
    if (reference !== models.model) release(reference.params);
  }
}
