// `rlhf eval`: a trained policy against its reference under a reward (src/rl/evaluate.ts), as one
// JSON object (--json) or a table; --samples keeps every completion with its reward.
import { checkWritable, writeFileAtomic } from "../../io/atomic.ts";
import type { Command } from "../command.ts";
import { baseFlag, numberFlag, parseFlags, requireFlag, requireRepeated, UsageError } from "../command.ts";
import { disposeModel, loadModel, resolveTokenizer, type LoadedModel } from "../../models/load.ts";
import { isSequenceClassifier } from "../../models/config.ts";
import { eosIdsOf } from "../../generation/eos.ts";
import { loadRewardSource } from "../../rl/reward-source.ts";
import { ensembleFlags, ensembleOptionsOf, normaliseEnsembleFlags } from "../ensemble-flags.ts";
import { readPromptFile } from "../../rl/prompts.ts";
import { promptText } from "../../tokenizers/chat.ts";
import { defaultEvalSettings, evaluatePolicy, type EvalReport, type EvalSettings } from "../../rl/evaluate.ts";
import type { SamplingSettings } from "../../rl/rollout.ts";
import { ROLLOUT_ENGINES, type RolloutEngineName } from "../../generation/rollout-engine.ts";
import { readLmData } from "../../data/datasets.ts";
import { sftRows } from "../../train/sft.ts";
import { languageModelLoss } from "../../train/lm-eval.ts";
import type { Tokenizer } from "../../tokenizers/tokenizer.ts";

/** Sampling flags shared with `rlhf pairs`. */
export const samplingFlags = {
  "max-new-tokens": { type: "string", default: String(defaultEvalSettings.max_new_tokens), help: "tokens per completion at most <N>" },
  temperature: { type: "string", default: String(defaultEvalSettings.temperature), help: "sampling temperature, 0 = greedy <T>" },
  "top-k": { type: "string", default: "0", help: "sample among the K most likely tokens, 0 = all <K>" },
  "top-p": { type: "string", default: "1", help: "nucleus sampling mass <P>" },
  seed: { type: "string", default: "0", help: "random seed; the same seed gives the same completions <S>" },
  "batch-size": { type: "string", default: String(defaultEvalSettings.batch_size), help: "prompts generated together <N>" },
  rollout_engine: { type: "string", default: "jax-js", help: "where completions are sampled: jax-js (built in) or llama.cpp (each model exported once as a GGUF; other samples than jax-js's for the same seed) <ENGINE>" },
} as const;

export function samplingSettings(v: Record<string, unknown>): SamplingSettings {
  const flag = (name: keyof typeof samplingFlags) => v[name] as string | undefined;
  return {
    max_new_tokens: numberFlag(flag("max-new-tokens"), "max-new-tokens", defaultEvalSettings.max_new_tokens, { min: 1, integer: true }),
    temperature: numberFlag(flag("temperature"), "temperature", defaultEvalSettings.temperature, { min: 0 }),
    top_k: numberFlag(flag("top-k"), "top-k", 0, { min: 0, integer: true }),
    top_p: numberFlag(flag("top-p"), "top-p", 1, { min: 0, max: 1 }),
    seed: numberFlag(flag("seed"), "seed", 0, { min: 0, integer: true }),
    batch_size: numberFlag(flag("batch-size"), "batch-size", defaultEvalSettings.batch_size, { min: 1, integer: true }),
    rollout_engine: rolloutEngineFlag(flag("rollout_engine")),
  };
}

/** `--rollout_engine`'s value, jax-js when absent (`rlhf eval`, `pairs`, `bench`). */
export function rolloutEngineFlag(value: string | undefined): RolloutEngineName {
  if (value === undefined) return "jax-js";
  if (!(ROLLOUT_ENGINES as readonly string[]).includes(value)) throw new UsageError(`--rollout_engine: expected one of ${ROLLOUT_ENGINES.join(", ")}, got "${value}"`);
  return value as RolloutEngineName;
}

/** A causal LM named by a flag (`base` for an adapter's), refusing reward models (a common mix-up of paths). */
export async function loadCausalLm(path: string | undefined, flag: string, base?: string): Promise<LoadedModel> {
  const model = await loadModel(requireFlag(path, flag), { base });
  if (isSequenceClassifier(model.config)) throw new UsageError(`--${flag} ${model.path} is a reward model (sequence classifier); it needs a causal LM`);
  return model;
}

/** New tokens must leave room for at least one prompt token (and the EOS) in the context. */
export function checkRoom(maxNewTokens: number, model: LoadedModel, flag: string): void {
  if (maxNewTokens + 2 > model.arch.maxPositions) {
    throw new UsageError(`--${flag} ${maxNewTokens} leaves no room for a prompt in the context of ${model.arch.maxPositions} tokens of ${model.path}`);
  }
}

const usage = `Usage: rlhf eval --policy PATH --reference PATH --reward SRC --prompts FILE [--json] [options]

Samples completions from the policy and from the reference with the same settings and seeds,
scores both with the reward, and reports:
  reward, reference_reward   mean score of the policy's / the reference's completions
  kl                         KL(policy ‖ reference) per completion: the mean over the policy's samples
                             of Σ log π − log π_ref over their tokens (k1; EOS included)
  length, reference_length   mean completion tokens
  win_rate                   share of (prompt, sample) pairs where the policy's completion scores
                             higher than the reference's drawn with the same seed; ties count ½
  rm_ensemble_std, reference_rm_ensemble_std
                             with a reward-model ensemble (rm train --ensemble N): its members' std
                             of a score, mean over the policy's / the reference's completions
The two models must share a tokenizer (the policy's is used). The reward is a reward-model
directory, an ensemble directory (reduced by --ensemble_reduce) or a .mjs/.ts module exporting \`reward(prompts, completions)\`; several --reward flags are
summed (PATH@WEIGHT weights one). Prompt files are JSON lines with a "prompt" field (text or chat
messages) or .txt lines.
With --lm-data FILE (a .txt file of documents split by <|endoftext|>, or SFT data such as
{"text": ...} lines), also (and, without
--prompts and --reward, only these: nothing is sampled):
  lm_loss, reference_lm_loss  mean NLL per token of FILE's texts (every token but the first) under
                             each model: what RLHF cost as a language model (the alignment tax is
                             lm_loss − reference_lm_loss); lm_tokens counts the tokens scored`;

const flags = {
  policy: { type: "string", help: "the trained policy: llama2.c .bin or HF directory <PATH>" },
  reference: { type: "string", help: "the reference (e.g. the SFT model it started from) <PATH>" },
  ...baseFlag,
  reward: { type: "string", multiple: true, help: "reward source: RM or ensemble directory or .mjs/.ts module, PATH@WEIGHT to weight (repeatable) <SRC>" },
  ...ensembleFlags,
  prompts: { type: "string", help: "JSON lines with a prompt field, or .txt lines <FILE>" },
  tokenizer: { type: "string", help: "tokenizer of both models <PATH> (default: found with the policy)" },
  "num-samples": { type: "string", default: "1", help: "completions per prompt from each model <N>" },
  ...samplingFlags,
  samples: { type: "string", help: "write every prompt's completions, rewards and KL as JSON lines <FILE>" },
  json: { type: "boolean", help: "print one JSON object instead of the table" },
  "lm-data": { type: "string", help: "held-out text whose LM loss is reported for both models <FILE>" },
  "lm-max-length": { type: "string", help: "cut --lm-data texts to this many tokens (default: the context) <N>" },
} as const;

export const command: Command = {
  summary: "evaluate a policy against its reference: reward, KL, length, win rate",
  async run(argv) {
    const parsed = parseFlags(normaliseEnsembleFlags(argv), usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    if (v["lm-data"] && !v.prompts && !v.reward) return lmOnly(v);
    const rewardSpecs = requireRepeated(v.reward, "reward");
    const settings: EvalSettings = { ...samplingSettings(v), num_samples: numberFlag(v["num-samples"], "num-samples", 1, { min: 1, integer: true }) };
    requireFlag(v.reference, "reference");
    const prompts = await readPromptFile(requireFlag(v.prompts, "prompts"));
    if (v.samples) checkWritable(v.samples);

    const policy = await loadCausalLm(v.policy, "policy", v.base);
    const reference = await loadCausalLm(v.reference, "reference", v.base);
    checkSameVocabulary(policy, reference);
    checkRoom(settings.max_new_tokens, policy, "max-new-tokens");
    checkRoom(settings.max_new_tokens, reference, "max-new-tokens");
    const tokenizer = await resolveTokenizer(policy, v.tokenizer);
    const eosIds = eosIdsOf(policy, tokenizer);
    if (eosIds.length === 0) throw new UsageError("the policy has no EOS token id (config eos_token_id or tokenizer)");
    const reward = await loadRewardSource(rewardSpecs, ensembleOptionsOf(v));
    // A batch larger than the prompt file would only generate padding rows.
    settings.batch_size = Math.min(settings.batch_size, prompts.length);

    const { report, samples } = await evaluatePolicy({
      policy,
      reference,
      tokenizer,
      prompts: prompts.map((p) => promptText(tokenizer, p)),
      reward,
      eosIds,
      settings,
    });
    const lm = v["lm-data"] ? await lmLosses(v["lm-data"], tokenizer, policy, reference, numberFlag(v["lm-max-length"], "lm-max-length", policy.arch.maxPositions, { min: 2, integer: true, max: policy.arch.maxPositions }), settings.batch_size) : null;
    if (v.samples) {
      const lines = samples.map(({ prompt_index, sample_index, prompt: _rendered, ...rest }) => JSON.stringify({ prompt: prompts[prompt_index], sample: sample_index, ...rest }));
      await writeFileAtomic(v.samples, lines.join("\n") + "\n");
    }
    reward.dispose();
    disposeModel(policy);
    disposeModel(reference);
    process.stdout.write(v.json ? JSON.stringify({ ...report, ...(lm ?? {}) }) + "\n" : table(report, settings, reward.name) + (lm ? lmLine(lm, v["lm-data"]!) : ""));
    return 0;
  },
};

/** Both models are read with the policy's tokenizer: the KL and the LM losses need one vocabulary. */
function checkSameVocabulary(policy: LoadedModel, reference: LoadedModel): void {
  if (policy.arch.vocabSize !== reference.arch.vocabSize) {
    throw new UsageError(`the policy's vocabulary (${policy.arch.vocabSize} tokens) differs from the reference's (${reference.arch.vocabSize}); the KL needs one tokenizer for both`);
  }
}

/** `--lm-data` alone: the two models' LM losses, without sampling or a reward. */
async function lmOnly(v: Record<string, string | boolean | string[] | undefined>): Promise<number> {
  const lmData = v["lm-data"] as string;
  const policy = await loadCausalLm(v.policy as string | undefined, "policy", v.base as string | undefined);
  const reference = await loadCausalLm(v.reference as string | undefined, "reference", v.base as string | undefined);
  checkSameVocabulary(policy, reference);
  const tokenizer = await resolveTokenizer(policy, v.tokenizer as string | undefined);
  const maxLength = numberFlag(v["lm-max-length"] as string | undefined, "lm-max-length", policy.arch.maxPositions, { min: 2, integer: true, max: policy.arch.maxPositions });
  const batchSize = numberFlag(v["batch-size"] as string | undefined, "batch-size", defaultEvalSettings.batch_size, { min: 1, integer: true });
  const lm = await lmLosses(lmData, tokenizer, policy, reference, maxLength, batchSize);
  disposeModel(policy);
  disposeModel(reference);
  process.stdout.write(v.json ? JSON.stringify(lm) + "\n" : lmLine(lm, lmData));
  return 0;
}

interface LmLosses {
  lm_loss: number;
  reference_lm_loss: number;
  lm_tokens: number;
}

/** Both models' LM loss on the texts of `path` (every token a target but the first). */
async function lmLosses(path: string, tokenizer: Tokenizer, policy: LoadedModel, reference: LoadedModel, maxLength: number, batchSize: number): Promise<LmLosses> {
  const rows = sftRows(readLmData(path, tokenizer), { max_length: maxLength, packing: false, completion_only_loss: false });
  if (rows.length === 0) throw new UsageError(`--lm-data ${path}: no text of two tokens or more to score`);
  const options = { padId: tokenizer.padTokenId ?? 0, batchSize, maxLength };
  const ours = await languageModelLoss(policy.arch, policy.params, rows, options);
  const theirs = await languageModelLoss(reference.arch, reference.params, rows, options);
  return { lm_loss: ours.loss, reference_lm_loss: theirs.loss, lm_tokens: ours.tokens };
}

function lmLine(lm: LmLosses, path: string): string {
  return `LM loss on ${path} (${lm.lm_tokens} tokens): policy ${lm.lm_loss.toFixed(4)}, reference ${lm.reference_lm_loss.toFixed(4)} nats/token (alignment tax ${(lm.lm_loss - lm.reference_lm_loss).toFixed(4)})\n`;
}

function table(r: EvalReport, s: EvalSettings, rewardName: string): string {
  const row = (name: string, reward: number, length: number) => `| ${name.padEnd(9)} | ${reward.toFixed(3).padStart(8)} | ${length.toFixed(1).padStart(6)} |`;
  return [
    `${r.num_prompts} prompts × ${r.num_samples} sample${r.num_samples === 1 ? "" : "s"}; temperature ${s.temperature}, at most ${s.max_new_tokens} new tokens, seed ${s.seed}; reward ${rewardName}`,
    "",
    "| model     |   reward | length |",
    "|-----------|----------|--------|",
    row("policy", r.reward, r.length),
    row("reference", r.reference_reward, r.reference_length),
    "",
    `KL(policy ‖ reference): ${r.kl.toFixed(3)} nats per completion (k1 estimate from the policy's samples)`,
    `win rate of the policy over the reference: ${r.win_rate.toFixed(3)} (ties count ½)`,
    ...(r.rm_ensemble_std !== undefined ? [`reward-model ensemble members' std of a score: policy ${r.rm_ensemble_std.toFixed(3)}, reference ${r.reference_rm_ensemble_std!.toFixed(3)}`] : []),
    "",
  ].join("\n");
}
