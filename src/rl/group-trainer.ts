// The critic-free on-policy loop shared by GRPO and RLOO (TRL's GRPOTrainer and RLOOTrainer): each
// step samples `num_generations` completions for each of `batch_size` prompts, scores them with the
// reward source, turns the scores into per-completion advantages within each prompt's group, and
// takes `num_iterations` policy-gradient steps (clipped, capped or gated: GRPO's loss_type). No value
// model. The two algorithms differ in where the KL to the frozen reference goes and in their loss
// (see `grpo` and `rloo` below). With `rollout_engine` llama.cpp the samples come from llama.cpp and
// the loss is corrected by truncated importance sampling, as TRL's GRPOTrainer does for vLLM.
//
// Metrics: TRL's GRPOTrainer / RLOOTrainer names, listed with their meanings in src/algorithms/METRICS.md.
import { fromHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { freshProgress, nextPrompts, type OnPolicyProgress } from "./on-policy-progress.ts";
import { learningRateAt } from "../engine/schedule.ts";
import type { AdamWState } from "../engine/optim.ts";
import type { Array } from "../engine/runtime.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { HeadLoss } from "../train/step.ts";
import { PolicyUpdater } from "./policy-updater.ts";
import { updaterOptions, type PolicyParts } from "./policy-models.ts";
import type { OnPolicyStepReport, OnPolicyTrainer } from "./on-policy-run.ts";
import type { GroupRunConfig } from "./group-config.ts";
import { grpoAdvantages, normalizeAdvantages, rlooAdvantages } from "../algorithms/group-advantages.ts";
import { grpoLosses, type GRPOConfig, type GrpoLossInputs } from "../algorithms/grpo.ts";
import { rlooLoss } from "../algorithms/rloo.ts";
import type { LossOutput } from "../algorithms/loss.ts";
import type { RewardSource } from "./reward-source.ts";
import { responseHidden, responseTargets } from "./scoring.ts";
import type { DeviceSequences } from "./sequences.ts";
import { mean, rolloutCorrection, sequenceKl, type ImportanceWeightLevel } from "./rollout.ts";
import type { LlamaCppEngineOptions } from "../generation/rollout-engine.ts";
import { GroupRollout } from "./group-rollout.ts";

/** How an algorithm turns scores into advantages, where it puts the KL to the reference, and its loss. */
export interface GroupAlgorithm {
  name: "grpo" | "rloo";
  /** The per-completion reward and its advantage, from scores and sequence KLs (k1, at sampling). */
  advantages(scores: number[], sequenceKl: number[], config: GroupRunConfig): { rewards: number[]; advantages: number[] };
  /** β of the per-token k3 penalty inside the loss. */
  lossBeta(config: GRPOConfig): number;
  /** The traced policy loss over one micro-batch. */
  loss(inputs: GrpoLossInputs, config: GRPOConfig): LossOutput;
  /** Where an external engine's truncated importance weight applies: to each token's objective, or to each completion's (one ratio per completion). */
  importanceWeightLevel: ImportanceWeightLevel;
}

/** GRPO (DeepSeekMath): group-normalised scores; the KL is a k3 penalty in the loss; loss_type picks the loss (algorithms/grpo.ts). */
export const grpo: GroupAlgorithm = {
  name: "grpo",
  advantages: (scores, _kl, c) => ({ rewards: scores, advantages: grpoAdvantages(scores, c.num_generations, c.scale_rewards) }),
  lossBeta: (c) => c.beta,
  loss: (inputs, c) => grpoLosses[c.loss_type](inputs, c),
  // TRL's GRPOTrainer with vLLM (its token_truncate mode), whatever importance_sampling_level is.
  importanceWeightLevel: "token",
};

/**
 * RLOO (Ahmadian et al. 2024, TRL's RLOOTrainer): the KL is subtracted from each completion's
 * score, r = score − β·KL(sequence), the advantage is r minus the mean of the others' r (optionally
 * normalised over the batch), and the loss clips one ratio per completion.
 */
export const rloo: GroupAlgorithm = {
  name: "rloo",
  advantages: (scores, kl, c) => {
    const rewards = scores.map((s, i) => s - c.beta * kl[i]!);
    const advantages = rlooAdvantages(rewards, c.num_generations);
    return { rewards, advantages: c.normalize_advantages ? normalizeAdvantages(advantages) : advantages };
  },
  lossBeta: () => 0,
  // RLOO has no loss_type: epsilon_high is only ever the upper clip (no cispo default).
  loss: (inputs, c) => rlooLoss(inputs, { epsilon: c.epsilon, epsilonHigh: c.epsilon_high ?? c.epsilon }),
  // TRL's RLOOTrainer has no vLLM correction; a completion is RLOO's action, so its weight is the
  // product of its tokens' ratios, truncated (TRL GRPO's sequence_truncate mode).
  importanceWeightLevel: "sequence",
};

/** What samples.jsonl keeps of a completion. */
export type GroupSample = { prompt: string; completion: string; score: number; advantage: number };

/** Everything that changes during a run; with the policy and optimizer saved, a run resumes exactly. */
export interface GroupProgress extends OnPolicyProgress {
  /** Prompt + completion tokens seen (TRL's num_tokens). */
  numTokens: number;
}

export type GroupModels = PolicyParts;


interface MicroBatch {
  seq: DeviceSequences;
  oldLogprobs: Array;
  advantages: Array;
  /** [rows, R] the tokens in the loss: the response mask, truncated completions' rows zeroed under mask_truncated_completions. */
  mask: Array;
  /** Scalar: the update's completion tokens / gradient_accumulation_steps (dapo's and cispo's divisor, see GrpoLossInputs). */
  tokenNormalizer: Array;
  /** Only when the loss has a KL term (no point copying it to the device otherwise). */
  refLogprobs?: Array;
  /** Truncated importance weights of an external engine's rollout, [rows, R] or [rows, 1] (see GroupAlgorithm.importanceWeightLevel). */
  importanceWeights?: Array;
}

export class GroupTrainer implements OnPolicyTrainer<GroupProgress> {
  readonly config: GroupRunConfig;
  readonly algorithm: GroupAlgorithm;
  readonly #models: GroupModels;
  readonly #prompts: string[];
  readonly #rollout: GroupRollout;
  readonly #reward: RewardSource;
  readonly #updater: PolicyUpdater<MicroBatch>;
  #rng: HostRng;
  progress: GroupProgress;

  constructor(args: {
    algorithm: GroupAlgorithm;
    config: GroupRunConfig;
    models: GroupModels;
    tokenizer: Tokenizer;
    prompts: string[];
    reward: RewardSource;
    eosIds: number[];
    resume?: { progress: GroupProgress; optimizer: AdamWState };
    /** Settings of an external rollout engine (llama.cpp's threads, cache, LoRA sync); its defaults otherwise. */
    engineOptions?: LlamaCppEngineOptions;
  }) {
    const { config, models, algorithm } = args;
    const completions = config.batch_size * config.num_generations;
    if (config.num_generations < 2) throw new Error(`${algorithm.name}: num_generations must be at least 2 (a group needs others to compare with)`);
    if (completions % config.gradient_accumulation_steps !== 0) {
      throw new Error(`${algorithm.name}: batch_size × num_generations = ${completions} completions do not split into ${config.gradient_accumulation_steps} equal micro-batches`);
    }
    if (args.eosIds.length === 0) throw new Error(`${algorithm.name}: the policy needs an EOS token id`);
    this.config = config;
    this.algorithm = algorithm;
    this.#models = models;
    this.#prompts = args.prompts;
    this.#reward = args.reward;
    const engine = { rolloutEngine: { rollout_engine: config.rollout_engine, rollout_dtype: config.rollout_dtype }, ...(args.engineOptions ? { engineOptions: args.engineOptions } : {}) };
    this.#rollout = new GroupRollout(models, { tokenizer: args.tokenizer, prompts: args.prompts, eosIds: args.eosIds, sampling: config, ...engine });
    const { arch } = models;
    const P = this.#rollout.promptLength;
    const beta = algorithm.lossBeta(config);
    const policyLoss: HeadLoss<MicroBatch, Record<string, never>> = {
      headWeight: arch.lmHeadName,
      temperatures: [config.temperature > 0 ? config.temperature : 1],
      body: (params, mb, rng) => ({ hidden: [responseHidden(arch, params, mb.seq, P, rng)], extra: {} }),
      targets: (mb) => [responseTargets(mb.seq.ids, P)],
      loss: ([tokenLogps], _extra, mb) => {
        const logprobs = tokenLogps!.reshape(mb.seq.responseMask.shape);
        return algorithm.loss(
          {
            logprobs,
            oldLogprobs: mb.oldLogprobs,
            advantages: mb.advantages,
            mask: mb.mask,
            tokenNormalizer: mb.tokenNormalizer,
            ...(mb.refLogprobs ? { refLogprobs: mb.refLogprobs } : {}),
            ...(mb.importanceWeights ? { importanceWeights: mb.importanceWeights } : {}),
          },
          { ...config, beta },
        );
      },
    };
    this.#updater = new PolicyUpdater(policyLoss, config, models.policy, updaterOptions(models, args.resume?.optimizer));
    this.progress = args.resume?.progress ?? { ...freshProgress(config.seed, args.prompts.length), numTokens: 0 };
    this.#rng = new HostRng(this.progress.rng);
  }

  /** The current policy (owned by the trainer; don't release). */
  get policy(): Params {
    return this.#updater.params;
  }
  get optimizerState(): AdamWState {
    return this.#updater.optimizerState;
  }
  /** No other trained model: the reference (the frozen start, or --ref-model) is only read. */
  readonly others = {};

  /** One step: generate groups, score, advantages, num_iterations optimizer updates. */
  async step(): Promise<OnPolicyStepReport<GroupSample>> {
    const c = this.config;
    const G = c.num_generations;
    const picked = nextPrompts(this.progress, this.config.batch_size, this.#rng);
    const batch = await this.#rollout.sample(this.#updater.model, this.#models.reference, picked, G, this.#rng.nextUint32(), this.#reward);
    const { generations, logprobs, refLogprobs, entropy, mask, promptTexts, scores, rows, containsEos } = batch;
    const n = rows.length;
    // mask_truncated_completions, as TRL: a completion cut off without EOS leaves the loss, the KL
    // and the entropy, but keeps its score in the advantages and its tokens in the lengths and in
    // dapo's divisor.
    const lossMask = c.mask_truncated_completions ? mask.map((row, i) => (containsEos[i] ? row : row.map(() => 0))) : mask;
    const lossTokens = lossMask.reduce((a, row) => a + row.reduce((b, x) => b + x, 0), 0);
    const kl = sequenceKl(logprobs, refLogprobs, lossMask);
    const { rewards, advantages } = this.algorithm.advantages(scores, kl, c);

    const groupStds: number[] = [];
    for (let g = 0; g < n; g += G) groupStds.push(stdOf(scores.slice(g, g + G)));
    const lengths = mask.map((row) => row.reduce((a, x) => a + x, 0));
    const totalTokens = lengths.reduce((a, x) => a + x, 0);
    const terminated = lengths.filter((_, i) => containsEos[i]);
    const terminatedOr0 = terminated.length > 0 ? terminated : [0];
    const metrics: Record<string, number> = {
      reward: mean(scores),
      reward_std: stdOf(scores),
      // torch.isclose(std, 0), as TRL tests it.
      frac_reward_zero_std: groupStds.filter((s) => s <= 1e-8).length / groupStds.length,
      "completions/mean_length": mean(lengths),
      "completions/min_length": Math.min(...lengths),
      "completions/max_length": Math.max(...lengths),
      "completions/clipped_ratio": (n - terminated.length) / n,
      "completions/mean_terminated_length": mean(terminatedOr0),
      "completions/min_terminated_length": Math.min(...terminatedOr0),
      "completions/max_terminated_length": Math.max(...terminatedOr0),
      entropy: entropy.reduce((s, row, b) => s + row.reduce((a, v, t) => a + (lossMask[b]![t] ? v : 0), 0), 0) / Math.max(1, lossTokens),
      "objective/kl": mean(kl),
      "objective/rlhf_reward": mean(rewards),
    };
    // RLOO puts the KL in the reward: TRL logs its per-token mean (k1, at sampling) as `kl`.
    if (c.beta !== 0 && this.algorithm.lossBeta(c) === 0) metrics.kl = kl.reduce((a, x) => a + x, 0) / Math.max(1, lossTokens);
    const correction = rolloutCorrection(c, generations, batch.samplingLogprobs, this.algorithm.importanceWeightLevel);
    Object.assign(metrics, correction.metrics);
    const weights = correction.weights;

    const lr = learningRateAt({ name: c.lr_scheduler_type, learningRate: c.learning_rate, warmupSteps: 0, totalSteps: c.total_steps }, this.progress.step);
    const withKl = this.algorithm.lossBeta(c) !== 0;
    const mbSize = n / c.gradient_accumulation_steps;
    const updates: Record<string, number[]> = {};
    for (let it = 0; it < c.num_iterations; it++) {
      const order = this.#rng.shuffle(Array.from({ length: n }, (_, i) => i));
      const microBatches: MicroBatch[] = [];
      for (let start = 0; start < n; start += mbSize) {
        const take = order.slice(start, start + mbSize);
        const pick = (x: number[][]) => fromHost(Float32Array.from(take.flatMap((i) => x[i]!)), [take.length, x[take[0]!]!.length]);
        const mb: MicroBatch = {
          seq: this.#rollout.pack(batch, take),
          oldLogprobs: pick(logprobs),
          advantages: fromHost(take.map((i) => advantages[i]!), [take.length]),
          mask: pick(lossMask),
          tokenNormalizer: fromHost([totalTokens / c.gradient_accumulation_steps], []),
        };
        if (withKl) mb.refLogprobs = pick(refLogprobs);
        if (weights) mb.importanceWeights = pick(weights);
        microBatches.push(mb);
      }
      const stepNumber = this.progress.step * c.num_iterations + it + 1;
      const out = await this.#updater.update(microBatches, lr, stepNumber, `${this.algorithm.name} step ${this.progress.step + 1}`);
      for (const [k, v] of Object.entries({ ...out.metrics, loss: out.loss, grad_norm: out.gradNorm })) (updates[k] ??= []).push(v);
    }
    for (const [k, v] of Object.entries(updates)) metrics[k] = mean(v);
    if (updates["clip_ratio/low_mean"]) metrics["clip_ratio/low_min"] = Math.min(...updates["clip_ratio/low_mean"]);
    if (updates["clip_ratio/high_mean"]) metrics["clip_ratio/high_max"] = Math.max(...updates["clip_ratio/high_mean"]);
    this.progress.step++;
    this.progress.episode += n;
    this.progress.numTokens += rows.reduce((a, i) => a + this.#rollout.promptIds[i]!.length, 0) + totalTokens;
    this.progress.rng = this.#rng.state;
    metrics.learning_rate = lr;
    metrics.num_tokens = this.progress.numTokens;
    metrics.epoch = (this.progress.step * c.batch_size) / this.#prompts.length;
    metrics.episode = this.progress.episode;
    const samples = generations.map((g, i) => ({ prompt: promptTexts[i]!, completion: g.text, score: scores[i]!, advantage: advantages[i]! }));
    return { metrics, samples, loss: metrics.loss ?? NaN, learningRate: lr, generatedTokens: totalTokens };
  }

  async dispose(): Promise<void> {
    this.#updater.dispose();
    await this.#rollout.dispose();
  }
}

/** Bessel-corrected, as torch's std that TRL calls. */
function stdOf(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}
