import { existsSync, readFileSync } from "node:fs";
import { rm as removePath } from "node:fs/promises";
import { join } from "node:path";
import { checkWritable, writeFileAtomic } from "../../io/atomic.ts";
import type { Command } from "../command.ts";
import { baseFlag, numberFlag, parseFlags, requireFlag, UsageError } from "../command.ts";
import { release } from "../../engine/arrays.ts";
import { isSequenceClassifier } from "../../models/config.ts";
import { describeModel, loadModel, resolveTokenizer, type LoadedModel } from "../../models/load.ts";
import { clampMaxLength, planOnly, readRunConfig, runTraining, trainingRunFlags } from "../offline-command.ts";
import { configFlags, defaultRewardConfig, normaliseFlagNames, rewardSpecs } from "../../train/config.ts";
import { DataError, readPreferenceData, readRecordLines, renderPreference, splitHeldOut, type ReadOptions } from "../../data/datasets.ts";
import { adapterRun, runPlans } from "../../train/peft-config.ts";
import { architectureFor, asSequenceClassifier } from "../../models/architecture.ts";
import { reduceEnsemble } from "../../algorithms/ensemble-reward.ts";
import { bootstrapSample, ENSEMBLE_FILE, isEnsembleDir, memberName, memberOffsets, writeEnsemble, type EnsembleManifest } from "../../train/reward-ensemble.ts";
import { evaluatePreferences, fitToLength, preferenceAccuracy, RewardScorer, rewardDataShape, rewardMemoryPlan, rewardModelFromCausalLm, rewardPadId, rewardTask } from "../../train/reward.ts";
import type { TrainerState } from "../../train/checkpoint.ts";
import { REWARD_STATS_FILE, rewardStats, writeRewardStats, type RewardStats } from "../../train/reward-stats.ts";
import type { PreferenceExample } from "../../data/datasets.ts";

/** The most records \`rm stats\` scores: enough for the 1st and 99th percentiles, bounded for large models. */
const STATS_MAX_RECORDS = 2000;

const usage = `Usage: rlhf rm train|eval|score|stats [options]

  rlhf rm train --model PATH --data FILE --output DIR [--eval-data FILE] [--config FILE] [--resume]
      Trains a reward model (TRL's RewardTrainer): the model's backbone plus a scalar head read at
      the last token, Bradley-Terry loss -log σ(r_chosen − r_rejected [− margin]); a ranking of K
      responses gives all K(K−1)/2 pairs in one batch, ties none. Data: JSON lines with
      "chosen"/"rejected" (optional "prompt", "margin"), or "responses"+"ranking"(+"ties"), or the
      rt-polarity folder. The model is saved as a *ForSequenceClassification with num_labels 1;
      with --use_peft, a LoRA adapter (task_type SEQ_CLS, the fresh score head trained whole in
      modules_to_save) on the frozen --model, saved as PEFT saves it, which eval, score and the
      RL trainers' --reward load over --model. When training ends, the model's scores of its
      training responses are summarised in DIR/${REWARD_STATS_FILE} (as rm stats writes it).
      With --ensemble N [--ensemble_bootstrap]: N reward models from seeds seed … seed+N-1 (each,
      with --ensemble_bootstrap, on its own resample of the training pairs) in DIR/member-0 …,
      one held-out set for all; DIR/${ENSEMBLE_FILE} lists them with the held-out accuracy of each and
      of their mean, DIR/${REWARD_STATS_FILE} the range of their mean score (each member's score less
      its own training mean: Bradley-Terry fixes a reward up to a constant). Every --reward takes
      DIR as one reward model (--ensemble_reduce mean|min|uwo). --resume skips finished members.
  rlhf rm eval --model DIR --data FILE [--split all|eval|train] [--json]
      Accuracy (share of pairs with r_chosen > r_rejected), mean margin and pair count. --split eval
      scores only the pairs that \`rm train\` held out of the same file (same seed and ratio).
  rlhf rm score --model DIR --data FILE [--output FILE]
      One JSON line per record: {"chosen_score", "rejected_score"} for pairs, {"scores"} for
      rankings, {"score"} for "text" or "prompt"+"completion" records; with --skip-invalid, an
      invalid record's line is {"invalid": REASON}.

  rlhf rm stats --model DIR --data FILE [--split train|all]
      Scores the responses of the model's training data (--split train, the default when the
      model came from \`rm train\`: the records it trained on) and writes their mean, std and
      percentiles to DIR/${REWARD_STATS_FILE}, the range the RL trainers' reward_ood monitor compares
      their scores with. At most ${STATS_MAX_RECORDS} records, evenly spaced.

  --skip-invalid (all four): skip malformed records instead of stopping at the first; the count
  and the first one's file:line and reason go to stderr.`;

/** --skip-invalid's reader options: skip, and say so under the command's name. */
function skipInvalid(name: string, skip: boolean | undefined): ReadOptions {
  return { skipInvalid: skip ?? false, warn: (m) => process.stderr.write(`${name}: ${m}\n`) };
}

const common = {
  model: { type: "string", help: "model: for train a causal LM (or a reward model to continue); otherwise a trained reward model <PATH>" },
  ...baseFlag,
  data: { type: "string", help: "preference data: JSON lines (.jsonl, .jsonl.gz) or the rt-polarity folder <FILE>" },
  tokenizer: { type: "string", help: "tokenizer file or directory <PATH> (default: found beside or inside the model)" },
  "skip-invalid": { type: "boolean", help: "skip malformed records (counted; the first one's file:line and reason on stderr) instead of stopping" },
} as const;

const trainFlags = {
  ...common,
  ...trainingRunFlags,
  ...configFlags(rewardSpecs, defaultRewardConfig),
  ensemble: { type: "string", help: "train N reward models (seeds seed … seed+N-1) into DIR/member-0 …, read everywhere as one ensemble <N>" },
  ensemble_bootstrap: { type: "boolean", help: "with --ensemble: each member trains on its own bootstrap resample of the training pairs" },
} as const;

const evalFlags = {
  ...common,
  split: { type: "string", default: "all", help: "which records: all, or the eval/train side of the split `rm train` made <NAME>" },
  "max-length": { type: "string", help: "drop pairs longer than this (default: the training max_length, else the model's context) <N>" },
  "batch-size": { type: "string", default: "16", help: "sequences per forward pass <N>" },
  json: { type: "boolean", help: "print one JSON object" },
} as const;

const statsFlags = {
  ...common,
  split: { type: "string", help: "which records: train (default when the model came from rm train) or all <NAME>" },
  "batch-size": { type: "string", default: "16", help: "sequences per forward pass <N>" },
} as const;

const scoreFlags = {
  ...common,
  output: { type: "string", help: "write the JSON lines here instead of stdout <FILE>" },
  "batch-size": { type: "string", default: "16", help: "sequences per forward pass <N>" },
} as const;

export const command: Command = {
  summary: "reward models: train (Bradley-Terry, rankings), eval (accuracy, margin), score",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === "train") return trainRm(rest);
    if (sub === "eval") return evalRm(rest);
    if (sub === "score") return scoreRm(rest);
    if (sub === "stats") return statsRm(rest);
    if (sub === undefined || sub === "--help" || sub === "-h") {
      process.stdout.write(usage + "\n");
      return sub ? 0 : 2;
    }
    throw new UsageError(`unknown subcommand "${sub}" (train, eval, score, stats)\n\n${usage}`);
  },
};

async function trainRm(argv: string[]): Promise<number> {
  const parsed = parseFlags(normaliseFlagNames(argv, rewardSpecs), usage, trainFlags);
  if (!parsed) return 0;
  const v = parsed.values;
  const [modelPath, dataPath, output] = [requireFlag(v.model, "model"), requireFlag(v.data, "data"), requireFlag(v.output, "output")];
  const config = readRunConfig(v, defaultRewardConfig, rewardSpecs);
  const members = v.ensemble === undefined ? 0 : numberFlag(v.ensemble, "ensemble", 0, { min: 2, integer: true });
  if (members === 0 && v.ensemble_bootstrap) throw new UsageError("--ensemble_bootstrap needs --ensemble N");
  const described = await describeModel(modelPath, { base: v.base });
  const tokenizer = await resolveTokenizer(described, v.tokenizer);
  clampMaxLength(config, described.arch, "rm");
  const padId = rewardPadId(tokenizer.padTokenId, described.config);
  const load = (path: string) => {
    const { kept, droppedPairs, truncated } = fitToLength(readPreferenceData(path, tokenizer, skipInvalid("rm", v["skip-invalid"])), config.max_length, config.truncation_mode);
    if (truncated > 0) process.stderr.write(`rm: ${path}: cut ${truncated} sequences to their last ${config.max_length} tokens (truncation_mode keep_end)\n`);
    if (droppedPairs > 0) process.stderr.write(`rm: ${path}: dropped ${droppedPairs} pairs longer than max_length ${config.max_length}\n`);
    return kept;
  };
  const all = load(dataPath);
  const data = v["eval-data"] ? { train: all, eval: load(v["eval-data"]) } : splitHeldOut(all, config.eval_split_ratio, config.seed);
  process.stderr.write(`rm: ${data.train.length} training records, ${data.eval.length} held out\n`);
  const shape = rewardDataShape([...data.train, ...data.eval], config.max_length);
  const classifier = isSequenceClassifier(described.config) ? described.arch : architectureFor(asSequenceClassifier(described.config, padId));
  const plans = runPlans(config, classifier, "SEQ_CLS", !config.disable_dropout, (adapter) => rewardMemoryPlan(described.arch, config, shape, adapter));
  if (planOnly(plans, v["dry-run"], config)) return 0;
  const one = async (out: string, seed: number, train: PreferenceExample[], resume: boolean | undefined): Promise<number> => {
    const memberConfig = { ...config, seed };
    const model = await loadModel(modelPath, { base: v.base });
    const rm = rewardModelFromCausalLm(model, { seed, padTokenId: padId });
    // LoRA: an adapter on the classifier made from --model, its fresh `score` head trained whole
    // (modules_to_save), saved as PEFT saves a SEQ_CLS adapter over --model.
    const lora = config.use_peft ? adapterRun({ ...model, ...rm }, memberConfig, "SEQ_CLS", { seed, dropout: !config.disable_dropout }) : null;
    const task = { ...rewardTask(lora?.arch ?? rm.arch, memberConfig, { train, eval: data.eval }, { modelConfig: rm.config, tokenizer }, padId), ...(lora ? { adapter: lora.adapter } : {}) };
    const code = await runTraining({ name: "rm", command: "rm train", output: out, resume }, task, lora?.params ?? rm.params, plans.memory, (state) => {
      const last = state.log_history.filter((r) => "eval_accuracy" in r).at(-1);
      return `reward model in ${out}${last ? ` (held-out accuracy ${last.eval_accuracy!.toFixed(4)}, margin ${last.eval_margin!.toFixed(4)})` : ""}`;
    });
    if (code !== 0) return code;
    const stats = await scoreStats(await loadTrained(out), train, dataPath, "train", config.max_length, 16);
    process.stderr.write(`rm: ${describeStats(stats)} in ${join(out, REWARD_STATS_FILE)}\n`);
    await writeRewardStats(out, stats);
    return 0;
  };
  const loadTrained = (dir: string) => loadRewardModel(dir, v.tokenizer, config.use_peft ? modelPath : v.base);
  if (members === 0) return one(output, config.seed, data.train, v.resume);
  return trainEnsemble({ output, members, bootstrap: v.ensemble_bootstrap ?? false, seed: config.seed, resume: v.resume ?? false, data, dataPath, maxLength: config.max_length }, one, loadTrained);
}

/**
 * `rm train --ensemble N` (Coste et al. 2023): N reward models in DIR/member-i, member i from seed
 * + i (its score head's initialisation and its data order) and, with --ensemble_bootstrap, its own
 * resample of the training pairs; all measured on the same held-out pairs. A member whose
 * reward_stats.json exists is complete, so --resume after a kill skips the finished members and
 * continues the unfinished one from its checkpoint. (A member's trainer_state.json records its own
 * seed, so `rm eval --split eval` on a member redraws another split: ensemble.json holds the
 * accuracies on the shared one.) Then the members score the training and
 * held-out pairs: DIR/reward_stats.json holds the range of their mean score (and their spread),
 * DIR/ensemble.json, written last, the members and their held-out accuracies.
 */
async function trainEnsemble(
  e: { output: string; members: number; bootstrap: boolean; seed: number; resume: boolean; data: { train: PreferenceExample[]; eval: PreferenceExample[] }; dataPath: string; maxLength: number },
  trainOne: (out: string, seed: number, train: PreferenceExample[], resume: boolean) => Promise<number>,
  loadTrained: (dir: string) => ReturnType<typeof loadRewardModel>,
): Promise<number> {
  // A fresh run must not leave an older ensemble's manifest claiming members that are being retrained.
  if (!e.resume) await removePath(join(e.output, ENSEMBLE_FILE), { force: true });
  const dirs = Array.from({ length: e.members }, (_, i) => join(e.output, memberName(i)));
  for (const [i, dir] of dirs.entries()) {
    if (e.resume && existsSync(join(dir, REWARD_STATS_FILE))) {
      process.stderr.write(`rm: ensemble member ${i + 1}/${e.members} already trained (${dir})\n`);
      continue;
    }
    process.stderr.write(`rm: ensemble member ${i + 1}/${e.members} (seed ${e.seed + i}${e.bootstrap ? ", bootstrap resample" : ""}) into ${dir}\n`);
    const code = await trainOne(dir, e.seed + i, e.bootstrap ? bootstrapSample(e.data.train, e.seed + i) : e.data.train, e.resume);
    if (code !== 0) return code;
  }
  const picked = evenlySpaced(e.data.train, STATS_MAX_RECORDS);
  // Centred as the ensemble's reward source centres them (memberOffsets).
  const offsets = memberOffsets(dirs);
  const trainScores: number[][] = [];
  const evalScores: number[][] = [];
  for (const [i, dir] of dirs.entries()) {
    const member = await loadTrained(dir);
    const scorer = new RewardScorer(member.model.arch, member.padId, Math.min(e.maxLength, member.model.arch.maxPositions));
    try {
      const centred = async (records: readonly PreferenceExample[]) => (await scorer.score(member.model.params, records.flatMap((x) => x.responses), 16)).map((s) => s - offsets[i]!);
      trainScores.push(await centred(picked));
      evalScores.push(await centred(e.data.eval));
    } finally {
      scorer.dispose();
      release(member.model.params);
    }
  }
  const mean = { ensemble_reduce: "mean", uwo_lambda: 0 } as const;
  const onTrain = reduceEnsemble(trainScores, mean);
  const { mean: stdMean, std: stdStd, percentiles } = rewardStats(onTrain.std, e.dataPath, "train");
  const stats: RewardStats = { ...rewardStats(onTrain.rewards, e.dataPath, "train"), ensemble_std: { mean: stdMean, std: stdStd, percentiles } };
  await writeRewardStats(e.output, stats);
  process.stderr.write(`rm: ensemble mean ${describeStats(stats)}; members' std mean ${stats.ensemble_std!.mean.toFixed(3)}\n`);
  const manifest: EnsembleManifest = { members: dirs.map((_, i) => memberName(i)), seed: e.seed, bootstrap: e.bootstrap };
  if (e.data.eval.length > 0) {
    const members = evalScores.map((s) => preferenceAccuracy(s, e.data.eval).accuracy);
    const ensemble = preferenceAccuracy(reduceEnsemble(evalScores, mean).rewards, e.data.eval);
    manifest.eval = { member_accuracy: members, accuracy: ensemble.accuracy, n: ensemble.n };
    process.stderr.write(`rm: held-out accuracy of the members ${members.map((a) => a.toFixed(4)).join(", ")}; of their mean ${ensemble.accuracy.toFixed(4)} (${ensemble.n} pairs)\n`);
  }
  await writeEnsemble(e.output, manifest);
  process.stderr.write(`rm: ensemble of ${e.members} reward models in ${e.output}\n`);
  return 0;
}

/** At most `max` records, evenly spaced: enough for the percentiles, bounded for large models. */
function evenlySpaced<T>(records: readonly T[], max: number): T[] {
  const stride = Math.max(1, records.length / max);
  return Array.from({ length: Math.min(records.length, max) }, (_, i) => records[Math.floor(i * stride)]!);
}

/** Scores every response of (at most STATS_MAX_RECORDS evenly spaced) `records` and summarises them; releases the model. */
async function scoreStats(rm: Awaited<ReturnType<typeof loadRewardModel>>, records: readonly PreferenceExample[], data: string, split: RewardStats["split"], maxLength: number, batchSize: number): Promise<RewardStats> {
  const picked = evenlySpaced(records, STATS_MAX_RECORDS);
  const scorer = new RewardScorer(rm.model.arch, rm.padId, Math.min(maxLength, rm.model.arch.maxPositions));
  try {
    return rewardStats(await scorer.score(rm.model.params, picked.flatMap((e) => e.responses), batchSize), data, split);
  } finally {
    scorer.dispose();
    release(rm.model.params);
  }
}

function describeStats(s: RewardStats): string {
  const p = (k: string) => s.percentiles[k]!.toFixed(3);
  return `scores of ${s.count} training responses: mean ${s.mean.toFixed(3)}, std ${s.std.toFixed(3)}, p1 ${p("p1")}, median ${p("p50")}, p99 ${p("p99")}`;
}

async function statsRm(argv: string[]): Promise<number> {
  const parsed = parseFlags(argv, usage, statsFlags);
  if (!parsed) return 0;
  const v = parsed.values;
  const modelPath = requireFlag(v.model, "model");
  const dataPath = requireFlag(v.data, "data");
  const rm = await loadRewardModel(modelPath, v.tokenizer, v.base);
  const trained = trainingConfig(rm.model);
  const split = v.split ?? (trained ? "train" : "all");
  if (split !== "train" && split !== "all") throw new UsageError(`--split must be train or all, got "${split}"`);
  if (split === "train" && !trained) throw new UsageError(`--split train needs the trainer_state.json that \`rm train\` writes beside the model`);
  const maxLength = Math.min(rm.model.arch.maxPositions, (trained?.max_length as number | undefined) ?? Infinity);
  const mode = trained?.truncation_mode === "keep_end" ? "keep_end" : "drop";
  const { kept } = fitToLength(readPreferenceData(dataPath, rm.tokenizer, skipInvalid("rm stats", v["skip-invalid"])), maxLength, mode);
  const records = split === "train" ? splitHeldOut(kept, trained!.eval_split_ratio as number, trained!.seed as number).train : kept;
  const stats = await scoreStats(rm, records, dataPath, split, maxLength, numberFlag(v["batch-size"], "batch-size", 16, { min: 1, integer: true }));
  await writeRewardStats(rm.model.adapter?.dir ?? modelPath, stats);
  process.stdout.write(`${describeStats(stats)}; written to ${join(rm.model.adapter?.dir ?? modelPath, REWARD_STATS_FILE)}\n`);
  return 0;
}

async function loadRewardModel(path: string, tokenizerPath?: string, base?: string) {
  if (isEnsembleDir(path)) throw new UsageError(`${path} is a reward-model ensemble (${ENSEMBLE_FILE}): give one member, e.g. ${join(path, memberName(0))}; the held-out accuracies of each and of their mean are in ${join(path, ENSEMBLE_FILE)}`);
  const model = await loadModel(path, { base });
  if (!isSequenceClassifier(model.config) || (model.config.num_labels ?? 2) !== 1) {
    release(model.params);
    throw new UsageError(`${path} is not a reward model (a *ForSequenceClassification with num_labels 1); train one with \`rlhf rm train\``);
  }
  const tokenizer = await resolveTokenizer(model, tokenizerPath);
  return { model, tokenizer, padId: rewardPadId(tokenizer.padTokenId, model.config) };
}

/** The training run's saved config (seed, split ratio, max_length), when the model (or adapter) came from `rm train`. */
function trainingConfig(model: LoadedModel): Record<string, unknown> | null {
  const path = join(model.adapter?.dir ?? model.path, "trainer_state.json");
  if (!existsSync(path)) return null;
  return (JSON.parse(readFileSync(path, "utf8")) as TrainerState).config;
}

async function evalRm(argv: string[]): Promise<number> {
  const parsed = parseFlags(argv, usage, evalFlags);
  if (!parsed) return 0;
  const v = parsed.values;
  const { model, tokenizer, padId } = await loadRewardModel(requireFlag(v.model, "model"), v.tokenizer, v.base);
  const trained = trainingConfig(model);
  const maxLength = numberFlag(v["max-length"], "max-length", Math.min(model.arch.maxPositions, (trained?.max_length as number | undefined) ?? Infinity), { min: 1, integer: true, max: model.arch.maxPositions });
  const dataPath = requireFlag(v.data, "data");
  const mode = trained?.truncation_mode === "keep_end" ? "keep_end" : "drop";
  const { kept, droppedPairs } = fitToLength(readPreferenceData(dataPath, tokenizer, skipInvalid("rm eval", v["skip-invalid"])), maxLength, mode);
  let records = kept;
  if (v.split !== "all") {
    if (v.split !== "eval" && v.split !== "train") throw new UsageError(`--split must be all, eval or train, got "${v.split}"`);
    if (!trained) throw new UsageError(`--split ${v.split} needs the trainer_state.json that \`rm train\` writes beside the model`);
    const split = splitHeldOut(kept, trained.eval_split_ratio as number, trained.seed as number);
    records = split[v.split];
  }
  if (droppedPairs > 0) process.stderr.write(`rm eval: dropped ${droppedPairs} pairs longer than ${maxLength} tokens\n`);
  const scorer = new RewardScorer(model.arch, padId, maxLength);
  const result = await evaluatePreferences(scorer, model.params, records, numberFlag(v["batch-size"], "batch-size", 16, { min: 1, integer: true }));
  scorer.dispose();
  release(model.params);
  if (v.json) process.stdout.write(JSON.stringify(result) + "\n");
  else process.stdout.write(`accuracy ${result.accuracy.toFixed(4)}  mean_margin ${result.mean_margin.toFixed(4)}  n ${result.n}\n`);
  return 0;
}

async function scoreRm(argv: string[]): Promise<number> {
  const parsed = parseFlags(argv, usage, scoreFlags);
  if (!parsed) return 0;
  const v = parsed.values;
  if (v.output) checkWritable(v.output);
  const { model, tokenizer, padId } = await loadRewardModel(requireFlag(v.model, "model"), v.tokenizer, v.base);
  const dataPath = requireFlag(v.data, "data");
  const context = model.arch.maxPositions;
  const eos = tokenizer.eosTokenId !== null ? [tokenizer.eosTokenId] : [];
  // Each record's rows, rendered the way training rendered them (EOS appended; pairs and rankings
  // through renderPreference, so message lists go through the chat template as in training).
  const rowsOfRecord = (record: Record<string, unknown>, where: string) => {
    if (typeof record.text === "string") return { kind: "score" as const, rows: [[...tokenizer.encode(record.text), ...eos]] };
    if (typeof record.prompt === "string" && typeof record.completion === "string") return { kind: "score" as const, rows: [[...tokenizer.encode(record.prompt + record.completion), ...eos]] };
    if (record.chosen !== undefined) return { kind: "pair" as const, rows: renderPreference(record, tokenizer, where).responses };
    if (Array.isArray(record.responses)) return { kind: "ranking" as const, rows: renderPreference(record, tokenizer, where).responses };
    throw new DataError(`${where}: nothing to score (expected "text", "prompt"+"completion", "chosen"+"rejected" or "responses")`);
  };
  // With --skip-invalid an invalid record still gets its output line, {"invalid": REASON}, so lines stay aligned with the input.
  let skipped = 0;
  let firstSkipped = "";
  const rowsOf = readRecordLines(dataPath).map((line) => {
    try {
      if ("invalid" in line) throw new DataError(`${line.where}: ${line.invalid}`);
      if (typeof line.record !== "object" || line.record === null) throw new DataError(`${line.where}: expected a JSON object (one record)`);
      return rowsOfRecord(line.record, line.where);
    } catch (err) {
      if (!v["skip-invalid"] || !(err instanceof DataError)) throw err;
      if (skipped++ === 0) firstSkipped = err.message;
      return { kind: "invalid" as const, rows: [] as number[][], reason: err.message };
    }
  });
  if (skipped > 0) process.stderr.write(`rm score: skipped ${skipped} invalid record${skipped === 1 ? "" : "s"} (first: ${firstSkipped}); their lines are {"invalid": REASON}\n`);
  const flat = rowsOf.flatMap((r) => r.rows);
  const tooLong = flat.filter((r) => r.length > context).length;
  if (tooLong > 0) process.stderr.write(`rm score: ${tooLong} sequences are longer than the model's context (${context}); their score is null\n`);
  const scorer = new RewardScorer(model.arch, padId, context);
  const fits = flat.filter((r) => r.length <= context);
  const scored = await scorer.score(model.params, fits, numberFlag(v["batch-size"], "batch-size", 16, { min: 1, integer: true }));
  scorer.dispose();
  release(model.params);
  let next = 0;
  const scoreOf = (row: number[]) => (row.length <= context ? scored[next++]! : null);
  const lines = rowsOf.map((r) => {
    const { kind, rows } = r;
    if (kind === "invalid") return { invalid: r.reason };
    const s = rows.map(scoreOf);
    if (kind === "score") return { score: s[0] };
    if (kind === "pair") return { chosen_score: s[0], rejected_score: s[1] };
    return { scores: s };
  });
  const text = lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
  if (v.output) await writeFileAtomic(v.output, text);
  else process.stdout.write(text);
  return 0;
}
