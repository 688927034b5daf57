// Evaluating a trained policy against its reference: sample completions from both with the same
// settings and seeds, score them with the reward source, and estimate how far the policy moved.
//
// - `reward`, `reference_reward`: mean score of the policy's / reference's completions.
// - `kl`: sequence-level KL(π ‖ π_ref) estimated from the policy's own samples, the mean over
//   samples of Σ_t (log π(y_t) − log π_ref(y_t)) over the completion's tokens (EOS included). This
//   is the k1 estimator, unbiased in expectation (single samples can be negative). Both log-probs
//   use the sampling temperature (logits / T; T = 0, greedy, scores at T = 1), so the estimate is
//   the KL between the distributions actually sampled from — except that top-k / top-p truncation
//   is not modelled: it measures KL between the full tempered distributions.
// - `length`, `reference_length`: mean completion tokens (EOS not counted).
// - `win_rate`: share of (prompt, sample) pairs where the policy's completion scores higher than the
//   reference's sampled with the same seed; ties count ½.
// - `rm_ensemble_std`, `reference_rm_ensemble_std` (a reward-model ensemble only): the members' std
//   of each completion's score, averaged over the policy's / the reference's completions.
import { compile, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import type { Array as JaxArray } from "../engine/runtime.ts";
import { createRolloutEngine } from "../generation/rollout-engine.ts";
import type { Architecture } from "../models/architecture.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { RewardSource } from "./reward-source.ts";
import { responseLogprobs } from "./scoring.ts";
import { packSequences, rowsOf, toDevice, type DeviceSequences } from "./sequences.ts";
import { encodePrompts, mean, sampleResponses, sequenceKl, type SampledResponses, type SamplingSettings } from "./rollout.ts";

export interface EvalSettings extends SamplingSettings {
  /** Completions per prompt for each model. */
  num_samples: number;
}

export const defaultEvalSettings: EvalSettings = { max_new_tokens: 64, temperature: 1, top_k: 0, top_p: 1, seed: 0, batch_size: 16, num_samples: 1 };

export interface EvalModel {
  arch: Architecture;
  params: Params;
}

export interface EvalReport {
  reward: number;
  reference_reward: number;
  kl: number;
  length: number;
  reference_length: number;
  win_rate: number;
  num_prompts: number;
  num_samples: number;
  rm_ensemble_std?: number;
  reference_rm_ensemble_std?: number;
}

export interface EvalSample {
  /** Index into the prompts, and which of the num_samples draws this is. */
  prompt_index: number;
  sample_index: number;
  prompt: string;
  completion: string;
  reward: number;
  reference_completion: string;
  reference_reward: number;
  kl: number;
}

export async function evaluatePolicy(args: {
  policy: EvalModel;
  reference: EvalModel;
  tokenizer: Tokenizer;
  prompts: string[];
  reward: RewardSource;
  eosIds: number[];
  settings: EvalSettings;
}): Promise<{ report: EvalReport; samples: EvalSample[] }> {
  const { policy, reference, tokenizer, prompts, reward, settings: s } = args;
  if (prompts.length === 0) throw new Error("evaluate: no prompts");
  if (policy.arch.vocabSize !== reference.arch.vocabSize) {
    throw new Error(`evaluate: the policy's vocabulary (${policy.arch.vocabSize}) differs from the reference's (${reference.arch.vocabSize}); KL needs one tokenizer`);
  }
  const context = Math.min(policy.arch.maxPositions, reference.arch.maxPositions);
  const { ids, promptLength: P } = encodePrompts(tokenizer, prompts, context, s.max_new_tokens);
  const R = s.max_new_tokens + 1;
  const temperature = s.temperature > 0 ? s.temperature : 1;
  const logprobsOf = (arch: Architecture) => compile((params: Params, seq: DeviceSequences) => responseLogprobs(arch, params, seq, P, temperature).logprobs);
  const scorePolicy = logprobsOf(policy.arch);
  const scoreReference = logprobsOf(reference.arch);
  const engine = s.rollout_engine ?? "jax-js";
  const generators = [createRolloutEngine(engine, policy.arch), createRolloutEngine(engine, reference.arch)] as const;
  const rng = new HostRng(s.seed);
  const samples: EvalSample[] = [];
  let policyTokens = 0;
  let referenceTokens = 0;
  // Σ of the ensemble members' std over the policy's and the reference's completions (stays empty for other rewards).
  const stdSums = [0, 0];
  const scoreWithStd = async (which: 0 | 1, texts: string[], completions: string[]) => {
    const scores = await reward.score(texts, completions);
    const std = reward.takeMetrics?.()["objective/rm_ensemble_std"];
    if (std !== undefined) stdSums[which]! += std * completions.length;
    return scores;
  };
  try {
    for (let k = 0; k < s.num_samples; k++) {
      for (let start = 0; start < prompts.length; start += s.batch_size) {
        const real = Math.min(s.batch_size, prompts.length - start);
        const batch = Array.from({ length: s.batch_size }, (_, i) => ids[start + Math.min(i, real - 1)]!);
        const options = { temperature: s.temperature, topK: s.top_k, topP: s.top_p, maxNewTokens: s.max_new_tokens, seed: rng.nextUint32(), eosIds: args.eosIds };
        const ours = await sampleResponses(generators[0], policy.params, batch, options, tokenizer);
        const theirs = await sampleResponses(generators[1], reference.params, batch, options, tokenizer);
        const kl = await sampleKl(ours, batch, P, R, (seq) => [scorePolicy(policy.params, seq), scoreReference(reference.params, seq)]);
        const texts = prompts.slice(start, start + real);
        const [ourScores, theirScores] = [
          await scoreWithStd(0, texts, ours.generations.slice(0, real).map((g) => g.text)),
          await scoreWithStd(1, texts, theirs.generations.slice(0, real).map((g) => g.text)),
        ];
        for (let i = 0; i < real; i++) {
          policyTokens += ours.generations[i]!.completionIds.length;
          referenceTokens += theirs.generations[i]!.completionIds.length;
          samples.push({
            prompt_index: start + i,
            sample_index: k,
            prompt: texts[i]!,
            completion: ours.generations[i]!.text,
            reward: ourScores[i]!,
            reference_completion: theirs.generations[i]!.text,
            reference_reward: theirScores[i]!,
            kl: kl[i]!,
          });
        }
      }
    }
  } finally {
    scorePolicy.dispose();
    scoreReference.dispose();
    for (const g of generators) await g.dispose();
  }
  const report: EvalReport = {
    reward: mean(samples.map((x) => x.reward)),
    reference_reward: mean(samples.map((x) => x.reference_reward)),
    kl: mean(samples.map((x) => x.kl)),
    length: policyTokens / samples.length,
    reference_length: referenceTokens / samples.length,
    win_rate: winRate(samples.map((x) => x.reward), samples.map((x) => x.reference_reward)),
    num_prompts: prompts.length,
    num_samples: s.num_samples,
  };
  if (reward.takeMetrics && (stdSums[0]! > 0 || stdSums[1]! > 0)) Object.assign(report, { rm_ensemble_std: stdSums[0]! / samples.length, reference_rm_ensemble_std: stdSums[1]! / samples.length });
  return { report, samples };
}

/** Share of pairs the first list wins, ties counting ½. */
export function winRate(ours: number[], theirs: number[]): number {
  if (ours.length !== theirs.length || ours.length === 0) throw new Error("winRate: needs two equally long, non-empty lists");
  return mean(ours.map((o, i) => (o > theirs[i]! ? 1 : o === theirs[i]! ? 0.5 : 0)));
}

/** Σ_t log π − log π_ref of each of the policy's sampled responses. */
async function sampleKl(sampled: SampledResponses, prompts: number[][], P: number, R: number, score: (seq: DeviceSequences) => [JaxArray, JaxArray]): Promise<number[]> {
  const packed = packSequences(prompts, sampled.responses, R, P);
  const device = toDevice(packed);
  const [lp, refLp] = score(device);
  release(device);
  const n = packed.batch;
  const rows = async (a: JaxArray) => rowsOf(await toHost(a), n, R);
  return sequenceKl(await rows(lp), await rows(refLp), rowsOf(packed.responseMask, n, R));
}
