// Rollout pieces shared by the critic-free trainers (group-trainer.ts) and evaluation
// (evaluate.ts): prompts encoded once to a fixed length, and sampled responses that keep the EOS
// token when the model stopped. The conventions match ppo-trainer.ts, so every on-policy path scores
// the same token sequences the same way.
import type { Generation } from "../generation/generate.ts";
import type { RolloutEngine, RolloutEngineName } from "../generation/rollout-engine.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { ImportanceSamplingFields, RolloutEngineField } from "./rollout-engine-config.ts";

/** Sampling settings shared by evaluation and pair sampling (flag names as on the command line). */
export interface SamplingSettings {
  max_new_tokens: number;
  temperature: number;
  top_k: number;
  top_p: number;
  seed: number;
  /** Prompts generated together (the last batch is padded with repeats, so one compilation serves all). */
  batch_size: number;
  /** Where completions are sampled (`--rollout_engine`): the built-in generator by default. */
  rollout_engine?: RolloutEngineName;
}

export interface EncodedPrompts {
  /** Token ids (BOS included), each at most `promptLength` long. */
  ids: number[][];
  /**
   * Every prompt is packed to this many columns. It is fixed for a whole run because compiled
   * scoring and loss functions close over it (a new length would mean a new compilation).
   */
  promptLength: number;
}

/**
 * Encodes prompts for a model with `maxPositions` of context that must also hold `responseLength`
 * new tokens and one EOS. Over-long prompts keep their end, which is what the response continues.
 */
export function encodePrompts(tokenizer: Tokenizer, prompts: string[], maxPositions: number, responseLength: number): EncodedPrompts {
  const encoded = prompts.map((p) => tokenizer.encode(p, { addSpecialTokens: true }));
  const room = maxPositions - (responseLength + 1);
  if (room < 1) throw new Error(`a response length of ${responseLength} leaves no room for a prompt in the model's context of ${maxPositions}`);
  const promptLength = Math.min(room, Math.max(1, ...encoded.map((e) => e.length)));
  return { ids: encoded.map((e) => (e.length > promptLength ? e.slice(e.length - promptLength) : e)), promptLength };
}

export interface SampleOptions {
  temperature: number;
  topK: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
  eosIds: number[];
}

export interface SampledResponses {
  generations: Generation[];
  /** Completion ids, with the EOS token appended when the model stopped: the policy must learn to stop. */
  responses: number[][];
  containsEos: boolean[];
}

/** One batch of samples; pack `responses` with a response length of maxNewTokens + 1. */
export async function sampleResponses(generator: RolloutEngine, params: Params, prompts: number[][], o: SampleOptions, tokenizer: Tokenizer): Promise<SampledResponses> {
  if (o.eosIds.length === 0) throw new Error("sampling responses needs an EOS token id");
  const generations = await generator.generate(
    params,
    prompts,
    { temperature: o.temperature, topK: o.topK, topP: o.topP, maxNewTokens: o.maxNewTokens, seed: o.seed, eosTokenIds: o.eosIds },
    tokenizer,
  );
  const eos = o.eosIds[0]!;
  const responses = generations.map((g) => (g.finishReason === "eos" ? [...g.completionIds, eos] : g.completionIds)).map((r) => (r.length > 0 ? r : [eos]));
  return { generations, responses, containsEos: generations.map((g) => g.finishReason === "eos") };
}

/**
 * Each response token's truncated importance weight min(p_trainer / p_sampler, cap) (TRL's
 * vllm_importance_sampling_correction, token level; cap null: untruncated). `trainer` rows hold each
 * response's log-probs at sampling time, in order; a position the sampler did not draw (an appended
 * EOS, padding) gets 1.
 */
export function importanceWeights(generations: Generation[], trainer: number[][], cap: number | null): number[][] {
  return trainer.map((row, i) => row.map((lp, k) => {
    const sampled = generations[i]!.logprobs[k];
    return sampled === undefined ? 1 : truncate(Math.exp(lp - sampled), cap);
  }));
}

/**
 * One weight per completion, [[w]] for each: min(Π_t p_trainer / p_sampler, cap) over its sampled
 * tokens (TRL's sequence_truncate mode), for a loss with one ratio per completion (RLOO).
 */
export function sequenceImportanceWeights(generations: Generation[], trainer: number[][], cap: number | null): number[][] {
  return generations.map((g, i) => [truncate(Math.exp(g.logprobs.reduce((s, lp, k) => s + trainer[i]![k]! - lp, 0)), cap)]);
}

const truncate = (ratio: number, cap: number | null) => (cap === null ? ratio : Math.min(ratio, cap));

/**
 * How far the sampler's log-probs of its own samples are from the trainer's recomputed ones (TRL's
 * names for its vLLM diagnostics): |Δ log p| per sampled token, and the importance weight the loss
 * applies (per token, or per completion at the sequence level) truncated at `cap` (TRL logs the
 * truncated ratio too; null: the plain ratio).
 */
export function samplingMetrics(generations: Generation[], trainer: number[][], cap: number | null, level: ImportanceWeightLevel = "token"): Record<string, number> {
  const diffs: number[] = [];
  generations.forEach((g, i) => g.logprobs.forEach((lp, k) => diffs.push(trainer[i]![k]! - lp)));
  if (diffs.length === 0) return {};
  const ratios = level === "token" ? diffs.map((d) => truncate(Math.exp(d), cap)) : sequenceImportanceWeights(generations, trainer, cap).map(([w]) => w!);
  return {
    "sampling/sampling_logp_difference/mean": mean(diffs.map(Math.abs)),
    "sampling/sampling_logp_difference/max": Math.max(...diffs.map(Math.abs)),
    "sampling/importance_sampling_ratio/min": Math.min(...ratios),
    "sampling/importance_sampling_ratio/mean": mean(ratios),
    "sampling/importance_sampling_ratio/max": Math.max(...ratios),
  };
}

/** A weight per response token ([n, R]) or one per completion ([n, 1]), as the loss's ratio is taken. */
export type ImportanceWeightLevel = "token" | "sequence";

/**
 * What a rollout from an external engine brings to the update: its sampling metrics and, with the
 * correction on, the truncated importance weights at `level`. Nothing for the built-in generator,
 * whose log-probs are the trainer's own. `trainer`: the policy's log-probs of the responses at
 * sampling time (the sampling temperature), row by row.
 */
export function rolloutCorrection(
  c: Pick<RolloutEngineField, "rollout_engine"> & ImportanceSamplingFields,
  generations: Generation[],
  trainer: number[][],
  level: ImportanceWeightLevel = "token",
): { metrics: Record<string, number>; weights?: number[][] } {
  if (c.rollout_engine === "jax-js") return { metrics: {} };
  // The engine's own probabilities differ from the trainer's (another kernel, an F16 cache): the
  // samples come from a slightly different policy, which truncated importance sampling corrects.
  const cap = c.rollout_importance_sampling_correction ? c.rollout_importance_sampling_cap : null;
  const metrics = samplingMetrics(generations, trainer, cap, level);
  if (!c.rollout_importance_sampling_correction) return { metrics };
  return { metrics, weights: (level === "token" ? importanceWeights : sequenceImportanceWeights)(generations, trainer, cap) };
}

/** Σ over each row's valid tokens of (logp − refLogp): the k1 estimate of a sequence's KL. */
export function sequenceKl(logprobs: number[][], refLogprobs: number[][], mask: number[][]): number[] {
  return logprobs.map((row, b) => row.reduce((s, lp, t) => s + (mask[b]![t] ? lp - refLogprobs[b]![t]! : 0), 0));
}

export function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, x) => a + x, 0) / xs.length;
}
