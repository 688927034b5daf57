// One round of the loop, stage by stage; each stage writes its outputs, then its done-marker, and a
// stage that has its marker is skipped (run-dir.ts). The trainers run in this process through
// their commands' own entry points (`rlhf rm train`, `rlhf dpo` / `ppo` / `online-dpo`, with --resume; handed in by
// cli/commands/loop.ts as RoundCommands, so this layer does not import the CLI), so a killed
// round continues the interrupted trainer from its last checkpoint, and the loop needs no second
// copy of their flag checks, data readers, memory plans or checkpoint logic.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeDirAtomic, writeFileAtomic } from "../io/atomic.ts";
import { InputError } from "../io/errors.ts";
import { splitHeldOut } from "../data/datasets.ts";
import { eosIdsOf } from "../generation/eos.ts";
import { HostRng } from "../engine/random.ts";
import { disposeModel, loadModel, resolveTokenizer } from "../models/load.ts";
import { evaluatePolicy, type EvalSample } from "../rl/evaluate.ts";
import { sampleScored } from "../rl/pairs.ts";
import { readPromptFile } from "../rl/prompts.ts";
import { loadRewardSource, type RewardSource } from "../rl/reward-source.ts";
import { mean } from "../rl/rollout.ts";
import { promptText } from "../tokenizers/chat.ts";
import type { TrainerState } from "../train/checkpoint.ts";
import { ensembleMemberDirs, readEnsemble } from "../train/reward-ensemble.ts";
import { labelByReward, pairOff, scorePairs, type Comparison, type LabeledComparison } from "./comparisons.ts";
import { fieldFlags, type LabelerConfig, type LoopConfig, type PolicyTrainer, type Scalar } from "./config.ts";
import { judgeVerdicts, labelByJudge, type JudgeVerdict } from "./judge-labeler.ts";
import { labelByPeople } from "./feedback-labeler.ts";
import { evalFile, isDone, jsonLines, markDone, readJsonLines, roundDir, writeRoundsFile, type RoundRecord, type Stage } from "./run-dir.ts";
import { marginDoubt, memberDisagreement, selectForLabeler, type Selection } from "./selection.ts";

export class LoopError extends InputError {}

const say = (line: string) => process.stderr.write(`loop: ${line}\n`);

/**
 * Where round r's outputs live. The policy trainer's run is round-N/<trainer>; the policy is that
 * directory itself for `rlhf dpo` (which saves there), its policy/ for the on-policy trainers.
 */
export const roundPaths = (out: string, r: number, trainer: PolicyTrainer = "dpo") => {
  const dir = roundDir(out, r);
  const policyRun = join(dir, trainer);
  return {
    dir,
    comparisons: join(dir, "comparisons.jsonl"),
    labels: join(dir, "labels.jsonl"),
    rmData: join(dir, "rm-train.jsonl"),
    rmEval: join(dir, "rm-eval.jsonl"),
    rm: join(dir, "rm"),
    policyRun,
    policy: trainer === "dpo" ? policyRun : join(policyRun, "policy"),
    evalSamples: join(dir, "eval-samples.jsonl"),
  };
};

/** The policy a round starts from: the SFT model, then each round's trained policy. */
export const startingPolicy = (config: LoopConfig, out: string, r: number) => (r === 0 ? config.policy : roundPaths(out, r - 1, config.policy_trainer).policy);

/** A command's entry point: its arguments in, its exit code out. */
export type CommandRun = (argv: string[]) => Promise<number>;

/** The commands a round runs: `rlhf rm`, the policy's trainer (`rlhf dpo`, `ppo` or `online-dpo`) and `rlhf judge`. */
export interface RoundCommands {
  rm: CommandRun;
  policy: Record<PolicyTrainer, CommandRun>;
  judge: CommandRun;
}

export async function runRound(config: LoopConfig, out: string, r: number, commands: RoundCommands): Promise<void> {
  const stages: Record<Stage, () => Promise<void>> = {
    sample: () => sampleStage(config, out, r),
    label: () => labelStage(config, out, r, commands.judge),
    rm: () => rewardModelStage(config, out, r, commands.rm),
    policy: () => policyStage(config, out, r, commands.policy[config.policy_trainer]),
    eval: () => evalStage(config, out, r),
  };
  for (const [stage, run] of Object.entries(stages) as [Stage, () => Promise<void>][]) {
    if (isDone(out, r, stage)) continue;
    say(`round ${r}: ${stage}`);
    await run();
    await markDone(out, r, stage);
  }
}

/** K completions per prompt from the round's starting policy, paired off into comparisons. */
async function sampleStage(config: LoopConfig, out: string, r: number): Promise<void> {
  const policyPath = startingPolicy(config, out, r);
  const policy = await loadModel(policyPath);
  try {
    const tokenizer = await resolveTokenizer(policy);
    let prompts = await readPromptFile(config.prompts);
    if (config.prompts_per_round !== undefined && config.prompts_per_round < prompts.length) {
      prompts = new HostRng(config.seed * 7919 + r).shuffle(prompts).slice(0, config.prompts_per_round);
    }
    // The labeler scores these later; sampling itself needs no reward.
    const unscored: RewardSource = { name: "unscored", score: async (p) => p.map(() => 0), dispose: () => {} };
    const sampled = await sampleScored({
      arch: policy.arch,
      params: policy.params,
      tokenizer,
      prompts,
      reward: unscored,
      eosIds: eosIdsOf(policy, tokenizer),
      settings: { ...config.sampling, batch_size: Math.min(config.sampling.batch_size, prompts.length), seed: config.seed * 7919 + r, rollout_engine: config.rollout_engine },
      onBatch: (done) => say(`round ${r}: sampled ${done}/${prompts.length} prompts`),
    });
    const comparisons = pairOff(sampled, tokenizer, r, r === 0 ? "sft" : `round-${r - 1}`);
    await writeFileAtomic(roundPaths(out, r).comparisons, jsonLines(comparisons));
  } finally {
    disposeModel(policy);
  }
}

/**
 * The labeler's verdicts on the round's comparisons (all of them, or the label_budget the
 * previous round's reward model is least sure of), and `rest`'s on the others.
 */
async function labelStage(config: LoopConfig, out: string, r: number, judge: CommandRun): Promise<void> {
  const comparisons = readJsonLines<Comparison>(roundPaths(out, r).comparisons);
  let chosen = comparisons;
  let rest: Comparison[] = [];
  if (config.label_budget !== undefined && config.label_budget < comparisons.length) {
    const doubt = r > 0 ? await selectionDoubt(config.selection, roundPaths(out, r - 1).rm, comparisons) : null;
    const picked = new Set(selectForLabeler(doubt, comparisons.length, config.label_budget, config.seed * 7919 + r));
    chosen = comparisons.filter((_, i) => picked.has(i));
    rest = comparisons.filter((_, i) => !picked.has(i));
    const how = doubt === null ? "random" : config.selection === "disagreement" ? "largest disagreement of the reward-model ensemble" : "smallest reward-model margins";
    say(`round ${r}: ${chosen.length} of ${comparisons.length} comparisons to the labeler (${how}), ${rest.length} ${config.rest.type === "drop" ? "dropped" : `to the ${config.rest.type} labeler`}`);
  }
  const dir = roundPaths(out, r).dir;
  const first = await labelWith(config.labeler, chosen, r, dir, judge, config.rest);
  const second = config.rest.type === "drop" ? { labels: [], failed: 0 } : await labelWith(config.rest, rest, r, join(dir, "rest"), judge);
  await writeFileAtomic(join(dir, "label-failures.json"), JSON.stringify({ failed: first.failed + second.failed }) + "\n");
  await writeFileAtomic(roundPaths(out, r).labels, jsonLines([...first.labels, ...second.labels]));
}

/**
 * One labeler's verdicts on some comparisons, and how many it failed to give (a judge's failed
 * verdicts). People with `suggestions` get `rest`'s judge's verdicts on their comparisons (judged in
 * `dir`/suggestions, cached there, so a resumed round asks the judge nothing twice).
 */
async function labelWith(labeler: LabelerConfig, comparisons: Comparison[], r: number, dir: string, judge: CommandRun, rest?: LoopConfig["rest"]): Promise<{ labels: LabeledComparison[]; failed: number }> {
  if (labeler.type === "reward") return { labels: await withReward(labeler.reward, (source) => labelByReward(source, comparisons, r)), failed: 0 };
  if (labeler.type === "judge") return labelByJudge(judge, labeler, comparisons, r, dir, say);
  let suggestions: JudgeVerdict[] = [];
  if (labeler.suggestions && rest?.type === "judge") {
    suggestions = (await judgeVerdicts(judge, rest, comparisons, join(dir, "suggestions"))).verdicts;
    say(`round ${r}: the judge suggested verdicts on ${suggestions.length} of ${comparisons.length} comparisons for the labelers (${labeler.suggestions})`);
  }
  return { labels: await labelByPeople(labeler, comparisons, r, say, suggestions), failed: 0 };
}

/** r(a) − r(b) of each comparison under a trained reward model (an ensemble's mean score). */
export async function rewardMargins(rmDir: string, comparisons: Comparison[]): Promise<number[]> {
  return withReward(rmDir, async (rm) => (await scorePairs(rm, comparisons)).map(([a, b]) => a - b));
}

/** How unsure the previous round's reward model is of each comparison, by `selection` (selection.ts); null for random. */
async function selectionDoubt(selection: Selection, rmDir: string, comparisons: Comparison[]): Promise<number[] | null> {
  if (selection === "random") return null;
  if (selection === "uncertainty") return marginDoubt(await rewardMargins(rmDir, comparisons));
  const members = ensembleMemberDirs(rmDir);
  if (!members) throw new LoopError(`${rmDir} is not a reward-model ensemble (no ensemble.json); selection: disagreement needs reward_model.ensemble`);
  const margins: number[][] = [];
  for (const m of members) margins.push(await rewardMargins(m, comparisons));
  return memberDisagreement(margins);
}

async function withReward<T>(spec: string, use: (source: RewardSource) => Promise<T>): Promise<T> {
  const source = await loadRewardSource([spec]);
  try {
    return await use(source);
  } finally {
    source.dispose();
  }
}

async function runCommand(name: string, run: CommandRun, argv: string[]): Promise<void> {
  const code = await run(argv);
  if (code !== 0) throw new LoopError(`rlhf ${name} ${argv.join(" ")} failed (exit code ${code})`);
}

/**
 * The reward model retrained from its backbone on every round's labels so far, less a held-out
 * share of each round's (drawn per round, so a round's held-out labels stay held out as rounds
 * add more), on which its accuracy is measured.
 */
async function rewardModelStage(config: LoopConfig, out: string, r: number, rm: CommandRun): Promise<void> {
  const p = roundPaths(out, r);
  const train: LabeledComparison[] = [];
  const heldOut: LabeledComparison[] = [];
  for (let i = 0; i <= r; i++) {
    const split = splitHeldOut(readJsonLines<LabeledComparison>(roundPaths(out, i).labels), config.reward_model.held_out, config.seed * 7919 + i);
    train.push(...split.train);
    heldOut.push(...split.eval);
  }
  await writeFileAtomic(p.rmData, jsonLines(train));
  await writeFileAtomic(p.rmEval, jsonLines(heldOut));
  const { ensemble, ensemble_bootstrap: bootstrap } = config.reward_model;
  const ensembleFlags = ensemble !== undefined ? ["--ensemble", String(ensemble), ...(bootstrap ? ["--ensemble_bootstrap"] : [])] : [];
  const argv = ["train", "--model", config.reward_model.model ?? config.policy, "--data", p.rmData, "--eval-data", p.rmEval, "--output", p.rm, "--resume", ...ensembleFlags, ...fieldFlags(config.reward_model.args)];
  await runCommand("rm train", rm, argv);
}

/**
 * The round's policy from the round's starting policy, with the SFT model as reference (the KL
 * leash): DPO on the round's labels, or PPO / online DPO on the training prompts with the round's
 * reward model as the reward.
 */
async function policyStage(config: LoopConfig, out: string, r: number, train: CommandRun): Promise<void> {
  const trainer = config.policy_trainer;
  const p = roundPaths(out, r, trainer);
  const from = startingPolicy(config, out, r);
  const argv =
    trainer === "dpo"
      ? ["--model", from, "--data", p.labels, ...fieldFlags(config.dpo)]
      : ["--policy", from, "--reward", p.rm, "--prompts", config.prompts, ...fieldFlags(onPolicyFields(config, trainer))];
  await runCommand(trainer, train, [...argv, "--ref-model", config.policy, "--output", p.policyRun, "--resume"]);
}

/** An on-policy trainer's fields, with the loop's rollout engine unless they name their own. */
function onPolicyFields(config: LoopConfig, trainer: "ppo" | "online-dpo"): Record<string, Scalar> {
  const fields = trainer === "ppo" ? config.ppo : config.online_dpo;
  return config.rollout_engine !== "jax-js" && !("rollout_engine" in fields) ? { ...fields, rollout_engine: config.rollout_engine } : fields;
}

/** The last held-out accuracy `rm train` logged; an ensemble's, of its members' mean score. */
function rewardModelAccuracy(rmDir: string): number {
  const ensemble = readEnsemble(rmDir);
  if (ensemble) {
    if (!ensemble.eval) throw new LoopError(`${rmDir}/ensemble.json has no held-out accuracy: no held-out labels (raise reward_model.held_out)`);
    return ensemble.eval.accuracy;
  }
  const state = JSON.parse(readFileSync(join(rmDir, "trainer_state.json"), "utf8")) as TrainerState;
  const last = state.log_history.filter((x) => "eval_accuracy" in x).at(-1);
  if (!last) throw new LoopError(`${rmDir}/trainer_state.json has no eval_accuracy: no held-out labels (raise reward_model.held_out)`);
  return last.eval_accuracy!;
}

/**
 * The new policy on the held-out prompts under the new reward model: against the SFT reference
 * (reward, KL, win rate) and against the previous round's policy (win rate), plus the gold
 * preference function's mean score when one is configured.
 */
async function evalStage(config: LoopConfig, out: string, r: number): Promise<void> {
  const p = roundPaths(out, r, config.policy_trainer);
  const policy = await loadModel(p.policy);
  const reference = await loadModel(config.policy);
  const previous = r > 0 ? await loadModel(startingPolicy(config, out, r)) : null;
  const rm = await loadRewardSource([p.rm]);
  try {
    const tokenizer = await resolveTokenizer(policy);
    const prompts = (await readPromptFile(config.eval_prompts)).map((x) => promptText(tokenizer, x));
    const e = config.eval;
    const settings = { ...e, top_k: 0, top_p: 1, batch_size: Math.min(e.batch_size, prompts.length), rollout_engine: config.rollout_engine };
    const run = (against: typeof reference) => evaluatePolicy({ policy, reference: against, tokenizer, prompts, reward: rm, eosIds: eosIdsOf(policy, tokenizer), settings });
    const vsReference = await run(reference);
    const vsPrevious = previous ? await run(previous) : vsReference;
    const labels = readJsonLines<LabeledComparison>(p.labels).filter((l) => !l.tie).length;
    const record: RoundRecord = {
      round: r,
      labels,
      label_failures: (JSON.parse(readFileSync(join(p.dir, "label-failures.json"), "utf8")) as { failed: number }).failed,
      labels_total: [p.rmData, p.rmEval].flatMap((f) => readJsonLines<LabeledComparison>(f)).filter((l) => !l.tie).length,
      rm_accuracy: rewardModelAccuracy(p.rm),
      reward: vsReference.report.reward,
      reference_reward: vsReference.report.reference_reward,
      kl: vsReference.report.kl,
      win_rate: vsReference.report.win_rate,
      win_rate_vs_previous: vsPrevious.report.win_rate,
      length: vsReference.report.length,
      ...(config.gold ? await goldScores(config.gold, vsReference.samples) : {}),
      ...(config.gold ? { rm_gold_accuracy: await goldAccuracy(config.gold, rm, readJsonLines<LabeledComparison>(p.rmEval).filter((l) => !l.tie)) } : {}),
    };
    await writeFileAtomic(p.evalSamples, jsonLines(vsReference.samples));
    await writeFileAtomic(evalFile(out, r), JSON.stringify(record, null, 2) + "\n");
    await writeRoundsFile(out);
    say(`round ${r}: ${summary(record)}`);
  } finally {
    rm.dispose();
    disposeModel(policy);
    disposeModel(reference);
    if (previous) disposeModel(previous);
  }
}

/**
 * How often the reward model orders the held-out comparisons as the gold function does (pairs the
 * gold function scores equal left out): its accuracy against the preference the labels are noisy
 * readings of, which rm_accuracy (against the labels themselves) can only estimate.
 */
async function goldAccuracy(gold: string, rm: RewardSource, pairs: LabeledComparison[]): Promise<number> {
  const asComparisons = pairs.map((l) => ({ prompt_text: l.prompt, responses: [l.chosen, l.rejected] as [string, string] }) as Comparison);
  const byRm = await scorePairs(rm, asComparisons);
  const byGold = await withReward(gold, (source) => scorePairs(source, asComparisons));
  const decided = byGold.map(([a, b], i) => [a - b, byRm[i]![0] - byRm[i]![1]] as const).filter(([g]) => g !== 0);
  return mean(decided.map(([g, r]) => (Math.sign(g) === Math.sign(r) ? 1 : 0)));
}

async function goldScores(gold: string, samples: EvalSample[]): Promise<{ gold: number; gold_reference: number }> {
  return withReward(gold, async (source) => {
    const prompts = samples.map((s) => s.prompt);
    return {
      gold: mean(await source.score(prompts, samples.map((s) => s.completion))),
      gold_reference: mean(await source.score(prompts, samples.map((s) => s.reference_completion))),
    };
  });
}

export const summary = (x: RoundRecord) =>
  `rm_accuracy ${x.rm_accuracy.toFixed(3)}${x.rm_gold_accuracy !== undefined ? ` (against gold ${x.rm_gold_accuracy.toFixed(3)})` : ""}, reward ${x.reward.toFixed(3)}, kl ${x.kl.toFixed(3)}, win_rate ${x.win_rate.toFixed(3)}, vs previous ${x.win_rate_vs_previous.toFixed(3)}` +
  (x.gold !== undefined ? `, gold ${x.gold.toFixed(4)} (reference ${x.gold_reference!.toFixed(4)})` : "");

/** The last round's policy, copied to OUT/policy (its files, without checkpoints or caches). */
export async function publishPolicy(config: LoopConfig, out: string): Promise<string> {
  const from = roundPaths(out, config.rounds - 1, config.policy_trainer).policy;
  const files: Record<string, Uint8Array> = {};
  for (const name of readdirSync(from)) {
    const path = join(from, name);
    if (statSync(path).isFile() && !name.endsWith("_ref_logps.json")) files[name] = readFileSync(path);
  }
  const dest = join(out, "policy");
  await writeDirAtomic(dest, files);
  return dest;
}
