// `rlhf demo`: the whole RLHF pipeline on the built-in synthetic task (synthetic.ts), offline, in
// about a minute on two cores, run by the shipped trainers. Each stage is the code its command
// runs, with the command's config type and TRL's defaults, reading the files the stage before it
// wrote (datasets.ts) and writing its own subdirectory of the output directory (checkpoints,
// metrics.jsonl, the final model), so any stage can be inspected, or rerun by hand:
//   pretrain/  SFT over whole stories (completion_only_loss off) from a fresh tiny Llama
//   sft/       SFT on demonstrations, loss on the continuation only            (rlhf sft)
//   rm/        a reward model on comparisons of SFT samples that simulated      (rlhf rm train)
//              noisy labelers ordered
//   ppo/       PPO against that reward model, KL to the SFT model, the value    (rlhf ppo)
//              model starting from the reward model
//   dpo/       DPO on the same comparisons, the SFT model as reference          (rlhf dpo)
// and every policy is then evaluated against the hidden gold reward as `rlhf eval` evaluates.
import { join } from "node:path";
import { release } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { initEngine } from "../engine/runtime.ts";
import { eosIdsOf } from "../generation/eos.ts";
import { architectureFor } from "../models/architecture.ts";
import { parseConfig } from "../models/config.ts";
import { loadModel, type LoadedModel } from "../models/load.ts";
import { copyParams, initParams } from "../models/params.ts";
import { readPreferenceData, readSftData, type PreferenceExample } from "../data/datasets.ts";
import { readDpoData } from "../data/dpo-data.ts";
import { defaultRewardConfig, defaultSFTConfig, type RewardConfig, type SFTConfig } from "../train/config.ts";
import { defaultDPOConfig, type DPOConfig } from "../train/dpo-config.ts";
import { dpoTask, fitDpoExamples, withReferenceLogps } from "../train/dpo.ts";
import { evaluatePreferences, fitToLength, RewardScorer, rewardModelFromCausalLm, rewardPadId, rewardTask } from "../train/reward.ts";
import { sftRows, sftTask } from "../train/sft.ts";
import { train, type TrainResult } from "../train/trainer.ts";
import { defaultEvalSettings, evaluatePolicy } from "../rl/evaluate.ts";
import { runOnPolicy } from "../rl/on-policy-run.ts";
import { defaultPpoRunConfig, PPO_FIXED_FIELDS, type PpoRunConfig } from "../rl/ppo-config.ts";
import { PpoTrainer, type PpoProgress } from "../rl/ppo-trainer.ts";
import { initialValueModel } from "../rl/ppo-value.ts";
import { readPromptFile } from "../rl/prompts.ts";
import { loadRewardSource } from "../rl/reward-source.ts";
import { promptText } from "../tokenizers/chat.ts";
import { samplePrompts, writeComparisons, writePrompts, writeStories, type DataFiles } from "./datasets.ts";
import { BOS, EOS, goldRewardSource, letterTokenizer, PAD, PROMPT_LEN, RESPONSE_LEN, SyntheticLanguage, VOCAB } from "./synthetic.ts";

/** BOS, a prompt, a response and EOS: the longest row pretraining and SFT see. */
const STORY_LEN = 1 + PROMPT_LEN + RESPONSE_LEN + 1;
/** Sampled completions (comparisons, PPO, evaluation) may run a little longer than the stories. */
const COMPLETION_LEN = RESPONSE_LEN + 2;
/** BOS, a prompt, a sampled completion and EOS: the longest row the reward model and DPO see. */
const PAIR_LEN = 1 + PROMPT_LEN + COMPLETION_LEN + 1;

export interface DemoOptions {
  seed: number;
  /** Smaller stages (for tests): about a quarter of the data and steps. */
  quick: boolean;
  /** Where every stage writes its data, checkpoints, metrics and model. */
  outputDir: string;
  log: (line: string) => void;
}

export interface PolicyReport {
  name: string;
  gold: number;
  kl: number;
  length: number;
}

export interface DemoReport {
  rmAccuracy: number;
  rmPairs: number;
  policies: PolicyReport[];
  seconds: Record<string, number>;
}

function tinyModel(seed: number): LoadedModel {
  const config = parseConfig(
    {
      model_type: "llama",
      architectures: ["LlamaForCausalLM"],
      vocab_size: VOCAB,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 32,
      tie_word_embeddings: true,
      bos_token_id: BOS,
      eos_token_id: EOS,
      pad_token_id: PAD,
    },
    "demo model",
  );
  const arch = architectureFor(config);
  return { config, arch, params: initParams(arch, seed), path: "a fresh tiny Llama", format: "hf-dir" };
}

// The configs: each command's own type with TRL's defaults, overridden only where this task needs
// it. Every stage takes the demo's seed. The learning rates: the model has 100K parameters and
// starts from random weights, so it learns at rates (1e-3 and up) that would wreck a pretrained
// model; TRL's defaults (2e-5 down to 1e-6) are for those. max_length: the task's rows are 14 to 16
// tokens, not the 1024 meant for real text (rows are padded to the longest allowed).
// Batches of 16 to 32 rows instead of TRL's 8: fewer, larger steps run faster on two cores.

function pretrainConfig(seed: number): SFTConfig {
  // Pretraining is SFT over whole texts: every token a target.
  return { ...defaultSFTConfig, seed, learning_rate: 3e-3, max_length: STORY_LEN, per_device_train_batch_size: 32, completion_only_loss: false };
}

function sftConfig(seed: number): SFTConfig {
  return { ...defaultSFTConfig, seed, learning_rate: 1e-3, max_length: STORY_LEN, per_device_train_batch_size: 32 };
}

function rewardConfig(seed: number): RewardConfig {
  // Eight passes over a few hundred pairs rather than three: the longer-trained model's scores spread
  // wider, and PPO, whose KL penalty is fixed, gets a reward it can climb (measured on the quick
  // run, seed 0: PPO's gold reward gain 0.04 after 3 epochs, 0.10 after 5, 0.24 after 8).
  return { ...defaultRewardConfig, seed, learning_rate: 1e-3, max_length: PAIR_LEN, per_device_train_batch_size: 16, num_train_epochs: 8 };
}

function dpoConfig(seed: number): DPOConfig {
  return { ...defaultDPOConfig, seed, learning_rate: 1e-3, max_length: PAIR_LEN, per_device_train_batch_size: 16 };
}

function ppoConfig(seed: number, quick: boolean): PpoRunConfig {
  return {
    ...defaultPpoRunConfig,
    seed,
    learning_rate: 3e-4,
    batch_size: 16,
    total_steps: quick ? 15 : 60,
    response_length: COMPLETION_LEN,
    // The evaluation samples at temperature 1 (TRL's PPO default is 0.7): PPO should improve the
    // distribution it is judged by.
    temperature: 1,
    // Its default weight applies to --ptx-data, which the demo does not give (as `rlhf ppo` sets it without).
    ptx_coef: 0,
    logging_steps: 10,
  };
}

/** A prompt file's prompts as the commands read them. */
async function readPrompts(path: string): Promise<string[]> {
  return (await readPromptFile(path)).map((p) => promptText(letterTokenizer, p));
}

export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  await initEngine();
  const { seed, quick, log } = options;
  const dir = (stage: string) => join(options.outputDir, stage);
  const seconds: Record<string, number> = {};
  const timed = async <T>(stage: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    log(`${stage}…`);
    const out = await fn();
    seconds[stage] = Math.round((performance.now() - t0) / 100) / 10;
    return out;
  };
  const lang = new SyntheticLanguage(seed);
  const rng = new HostRng(seed + 1);
  const scale = quick ? 0.25 : 1;
  const n = (count: number) => Math.round(count * scale);
  const tokenizer = letterTokenizer;
  const trainOptions = (stage: string) => ({ outputDir: dir(stage), evaluateAtStart: true, progress: false as const, log: () => {} });
  /** What the start-and-end evaluations logged: `metric` before training → after. */
  const change = (result: TrainResult, metric: string) => {
    const evals = result.state.log_history.filter((r) => metric in r);
    return `${evals[0]![metric]!.toFixed(3)} → ${evals.at(-1)![metric]!.toFixed(3)}`;
  };

  // SFT, as `rlhf sft --model FROM --data FILES.train --eval-data FILES.eval --output DIR/stage` runs it.
  const sft = async (stage: string, from: LoadedModel, files: DataFiles, config: SFTConfig) => {
    const data = { train: sftRows(readSftData(files.train, tokenizer), config), eval: sftRows(readSftData(files.eval, tokenizer), { ...config, packing: false }) };
    const task = sftTask(from.arch, config, data, { modelConfig: from.config, tokenizer }, PAD);
    const result = await train(task, from.params, trainOptions(stage));
    release(result.params);
    log(`  held-out loss ${change(result, "eval_loss")} after ${result.state.global_step} steps`);
  };

  // 1. Pretraining: next-token prediction on the synthetic language.
  await timed("pretrain", async () => {
    const files = writeStories(options.outputDir, "pretrain", "text", lang, rng, { train: n(3200), eval: 256 });
    await sft("pretrain", tinyModel(seed), files, pretrainConfig(seed));
  });

  // 2. SFT: demonstrations in the prompt → response format, loss on the response and EOS only.
  await timed("sft", async () => {
    const files = writeStories(options.outputDir, "sft", "prompt-completion", lang, rng, { train: n(1024), eval: 256 });
    await sft("sft", await loadModel(dir("pretrain")), files, sftConfig(seed));
  });

  // 3. Comparisons: K samples per prompt from the SFT model, every pair ordered by a noisy simulated labeler.
  const comparisons = await timed("comparisons", async () => {
    const model = await loadModel(dir("sft"));
    const prompts = { train: samplePrompts(lang, rng, n(136)), eval: samplePrompts(lang, rng, n(24)) };
    const files = await writeComparisons(options.outputDir, model, prompts, { k: 4, maxNewTokens: COMPLETION_LEN, seed }, rng);
    release(model.params);
    return files;
  });
  log(`  ${comparisons.pairs.train} labelled pairs for training, ${comparisons.pairs.eval} held out`);

  // 4. Reward model, as `rlhf rm train --model DIR/sft --data comparisons.jsonl --eval-data comparisons-eval.jsonl` trains it.
  const rmAccuracy = await timed("reward model", async () => {
    const config = rewardConfig(seed);
    const read = (path: string): PreferenceExample[] => fitToLength(readPreferenceData(path, tokenizer), config.max_length, config.truncation_mode).kept;
    const start = await loadModel(dir("sft"));
    const padId = rewardPadId(tokenizer.padTokenId, start.config);
    const rm = rewardModelFromCausalLm(start, { seed: config.seed, padTokenId: padId });
    const task = rewardTask(rm.arch, config, { train: read(comparisons.train), eval: read(comparisons.eval) }, { modelConfig: rm.config, tokenizer }, padId);
    const result = await train(task, rm.params, trainOptions("rm"));
    log(`  held-out accuracy against the labelers ${change(result, "eval_accuracy")}`);
    // As `rlhf rm eval --data comparisons-gold.jsonl`: does the RM rank like the truth the labelers only approximate?
    const scorer = new RewardScorer(rm.arch, padId, config.max_length);
    const accuracy = await evaluatePreferences(scorer, result.params, read(comparisons.gold));
    scorer.dispose();
    release(result.params);
    return accuracy;
  });
  log(`  reward model accuracy on held-out pairs (gold labels) ${rmAccuracy.accuracy.toFixed(3)} (n = ${rmAccuracy.n})`);

  // 5. PPO, as `rlhf ppo --policy DIR/sft --reward DIR/rm --prompts ppo-prompts.txt --output DIR/ppo` runs it.
  const ppoPrompts = await readPrompts(writePrompts(options.outputDir, "ppo-prompts", lang, rng, 64));
  await timed("ppo", async () => {
    const config = ppoConfig(seed, quick);
    const policy = await loadModel(dir("sft"));
    const reward = await loadRewardSource([dir("rm")]);
    const eosIds = eosIdsOf(policy, tokenizer);
    try {
      await runOnPolicy<PpoProgress>({
        name: "ppo",
        output: dir("ppo"),
        resume: false,
        config,
        fixedFields: PPO_FIXED_FIELDS,
        prompts: ppoPrompts,
        policy: { config: policy.config, tokenizer },
        others: ["value"],
        create: async () => {
          const value = await initialValueModel(policy, dir("rm"), { seed: config.seed, padTokenId: tokenizer.padTokenId ?? eosIds[0]! });
          // The starting policy's weights are only ever read from here on: they are the reference.
          const models = { arch: policy.arch, policy: copyParams(policy.params), reference: policy.params, ...value };
          return new PpoTrainer({ config, tokenizer, prompts: ppoPrompts, reward, eosIds, models });
        },
        headline: (m) => `rm score ${m["objective/scores"]!.toFixed(3)}, kl ${m["objective/kl"]!.toFixed(3)}`,
        log: () => {},
      });
    } finally {
      reward.dispose();
      release(policy.params);
    }
  });

  // 6. DPO on the same comparisons, as `rlhf dpo --model DIR/sft --data comparisons.jsonl --eval-data comparisons-eval.jsonl` runs it.
  await timed("dpo", async () => {
    const config = dpoConfig(seed);
    const model = await loadModel(dir("sft"));
    const read = (path: string) => fitDpoExamples(readDpoData(path, tokenizer), config, model.arch).examples;
    const data = {
      train: await withReferenceLogps(model.arch, model.params, read(comparisons.train), config, PAD),
      eval: await withReferenceLogps(model.arch, model.params, read(comparisons.eval), config, PAD),
    };
    const task = dpoTask(model.arch, config, data, { modelConfig: model.config, tokenizer }, PAD);
    const result = await train(task, model.params, trainOptions("dpo"));
    release(result.params);
    log(`  held-out rewards/accuracies ${change(result, "eval_rewards/accuracies")}`);
  });

  // 7. Evaluation against the hidden gold reward on held-out prompts, as
  // `rlhf eval --policy P --reference DIR/sft --reward GOLD --prompts eval-prompts.txt` evaluates.
  const evalPrompts = await readPrompts(writePrompts(options.outputDir, "eval-prompts", lang, rng, quick ? 32 : 128));
  const policies = await timed("evaluate", async () => {
    const reference = await loadModel(dir("sft"));
    const settings = { ...defaultEvalSettings, max_new_tokens: COMPLETION_LEN, temperature: 1, seed: seed + 7 };
    const evaluate = async (name: string, path: string): Promise<PolicyReport> => {
      const policy = path === dir("sft") ? reference : await loadModel(path);
      const { report } = await evaluatePolicy({ policy, reference, tokenizer, prompts: evalPrompts, reward: goldRewardSource, eosIds: eosIdsOf(policy, tokenizer), settings });
      if (policy !== reference) release(policy.params);
      return { name, gold: report.reward, kl: report.kl, length: report.length };
    };
    const out = [await evaluate("reference (SFT)", dir("sft")), await evaluate("PPO", join(dir("ppo"), "policy")), await evaluate("DPO", dir("dpo"))];
    release(reference.params);
    return out;
  });
  return { rmAccuracy: rmAccuracy.accuracy, rmPairs: rmAccuracy.n, policies, seconds };
}
