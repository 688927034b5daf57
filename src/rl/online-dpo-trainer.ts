// Online DPO (Guo et al. 2024; TRL's OnlineDPOTrainer): each step samples two completions for each
// of batch_size prompts from the current policy, ranks each pair with the reward source (the higher
// score is chosen; a tie keeps the first), and takes one DPO step on those pairs against the frozen
// starting policy (or --ref-model). The pairs are on-policy, which offline DPO's are not. The reference's log-probs
// come from the rollout's scoring pass, so no reference forward runs in the update.
//
// With `rollout_engine` llama.cpp the pairs are sampled by llama.cpp. No importance correction: the
// DPO loss has no ratio to an old policy and takes no expectation over the sampler's distribution;
// it scores the two given completions under the policy and the reference, both recomputed here, so
// where the pairs came from changes which pairs are trained on, not the loss on them (TRL's
// OnlineDPOTrainer with vLLM has none either). The sampling metrics are logged all the same.
//
// Metrics (TRL's OnlineDPOTrainer names; sums over a completion's tokens, means over the step):
// objective/kl (k1 of log π − log π_ref over both completions), objective/entropy (the policy's
// exact next-token entropy summed over the sampled tokens), objective/non_score_reward (−β·KL),
// objective/rlhf_reward (score − β·KL), objective/scores, objective/scores_margin (chosen − rejected
// score), rewards/* and logps/* from the DPO loss, val/contain_eos_token (share of completions
// that ended), beta, loss, grad_norm, learning_rate, episode.
import { fromHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { freshProgress, nextPrompts, type OnPolicyProgress } from "./on-policy-progress.ts";
import { learningRateAt } from "../engine/schedule.ts";
import type { AdamWState } from "../engine/optim.ts";
import type { Array } from "../engine/runtime.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { dpoLosses, dpoUsesAverageLogps } from "../algorithms/dpo.ts";
import { averageSequenceLogps, sequenceLogps } from "../algorithms/sequence.ts";
import type { HeadLoss } from "../train/step.ts";
import { PolicyUpdater } from "./policy-updater.ts";
import { updaterOptions, type PolicyParts } from "./policy-models.ts";
import type { OnPolicyStepReport, OnPolicyTrainer } from "./on-policy-run.ts";
import type { OnlineDpoRunConfig } from "./online-dpo-config.ts";
import { GroupRollout } from "./group-rollout.ts";
import type { RewardSource } from "./reward-source.ts";
import { mean, samplingMetrics, sequenceKl } from "./rollout.ts";
import type { LlamaCppEngineOptions } from "../generation/rollout-engine.ts";
import { responseHidden, responseTargets } from "./scoring.ts";
import type { DeviceSequences } from "./sequences.ts";

export type OnlineDpoProgress = OnPolicyProgress;

export type OnlineDpoSample = { prompt: string; chosen: string; rejected: string; chosen_score: number; rejected_score: number };

interface PairBatch {
  /** The chosen rows, then the rejected rows, of the micro-batch's pairs. */
  seq: DeviceSequences;
  refChosen: Array;
  refRejected: Array;
}

export class OnlineDpoTrainer implements OnPolicyTrainer<OnlineDpoProgress> {
  readonly config: OnlineDpoRunConfig;
  readonly #reference: Params;
  readonly #reward: RewardSource;
  readonly #rollout: GroupRollout;
  readonly #updater: PolicyUpdater<PairBatch>;
  readonly #average: boolean;
  #rng: HostRng;
  progress: OnlineDpoProgress;
  /** No other trained model: the reference (the frozen start, or --ref-model) is only read. */
  readonly others = {};

  constructor(args: {
    config: OnlineDpoRunConfig;
    models: PolicyParts;
    tokenizer: Tokenizer;
    prompts: string[];
    reward: RewardSource;
    eosIds: number[];
    resume?: { progress: OnlineDpoProgress; optimizer: AdamWState };
    /** Settings of an external rollout engine (llama.cpp's threads, cache, LoRA sync); its defaults otherwise. */
    engineOptions?: LlamaCppEngineOptions;
  }) {
    const { config, models } = args;
    if (config.batch_size % config.gradient_accumulation_steps !== 0) {
      throw new Error(`online DPO: batch_size ${config.batch_size} pairs do not split into ${config.gradient_accumulation_steps} equal micro-batches`);
    }
    if (!(config.beta > 0)) throw new Error(`online DPO: beta must be greater than 0, got ${config.beta}`);
    this.config = config;
    this.#reference = models.reference;
    this.#reward = args.reward;
    const sampling = { temperature: config.temperature, top_k: config.top_k, top_p: config.top_p, max_completion_length: config.response_length };
    // DPO compares the plain model's log-probs with the reference's, whatever the sampling temperature.
    const engine = { rolloutEngine: { rollout_engine: config.rollout_engine, rollout_dtype: config.rollout_dtype }, ...(args.engineOptions ? { engineOptions: args.engineOptions } : {}) };
    this.#rollout = new GroupRollout(models, { tokenizer: args.tokenizer, prompts: args.prompts, eosIds: args.eosIds, sampling, scoreTemperature: 1, ...engine });
    const { arch } = models;
    const P = this.#rollout.promptLength;
    const average = dpoUsesAverageLogps(config.loss_type);
    this.#average = average;
    const loss = dpoLosses[config.loss_type];
    const pairLoss: HeadLoss<PairBatch, Record<string, never>> = {
      headWeight: arch.lmHeadName,
      temperatures: [1],
      body: (params, b, rng) => ({ hidden: [responseHidden(arch, params, b.seq, P, rng)], extra: {} }),
      targets: (b) => [responseTargets(b.seq.ids, P)],
      loss: ([tokenLogps], _extra, b) => {
        const mask = b.seq.responseMask;
        const logps = (average ? averageSequenceLogps : sequenceLogps)(tokenLogps!.reshape(mask.shape), mask); // [2n]
        const n = b.refChosen.shape[0]!;
        return loss({ policyChosen: logps.ref.slice([0, n]), policyRejected: logps.slice([n, 2 * n]), refChosen: b.refChosen, refRejected: b.refRejected }, config);
      },
    };
    this.#updater = new PolicyUpdater(pairLoss, config, models.policy, updaterOptions(models, args.resume?.optimizer));
    this.progress = args.resume?.progress ?? freshProgress(config.seed, args.prompts.length);
    this.#rng = new HostRng(this.progress.rng);
  }

  get policy(): Params {
    return this.#updater.params;
  }
  get optimizerState(): AdamWState {
    return this.#updater.optimizerState;
  }

  /** One step: two completions per prompt, ranked, one DPO update on the pairs. */
  async step(): Promise<OnPolicyStepReport<OnlineDpoSample>> {
    const c = this.config;
    const p = this.progress;
    const picked = nextPrompts(p, c.batch_size, this.#rng);
    const batch = await this.#rollout.sample(this.#updater.model, this.#reference, picked, 2, this.#rng.nextUint32(), this.#reward);
    const { logprobs, refLogprobs, entropy, mask, containsEos } = batch;
    const scores = batch.scores.map((s, i) => (c.missing_eos_penalty !== null && !containsEos[i] ? s - c.missing_eos_penalty : s));
    const pairs = picked.map((_, g) => (scores[2 * g]! >= scores[2 * g + 1]! ? [2 * g, 2 * g + 1] : [2 * g + 1, 2 * g]) as [number, number]);
    // The reference's sequence log-probs, summed (or averaged for IPO) as the loss sums the policy's.
    const lengths = mask.map((row) => row.reduce((a, x) => a + x, 0));
    const refSeq = refLogprobs.map((row, i) => row.reduce((a, v, t) => a + (mask[i]![t] ? v : 0), 0) / (this.#average ? Math.max(1, lengths[i]!) : 1));

    const lr = learningRateAt({ name: c.lr_scheduler_type, learningRate: c.learning_rate, warmupSteps: 0, totalSteps: c.total_steps }, p.step);
    const size = c.batch_size / c.gradient_accumulation_steps;
    const micro: PairBatch[] = [];
    for (let from = 0; from < pairs.length; from += size) {
      const take = pairs.slice(from, from + size);
      micro.push({
        seq: this.#rollout.pack(batch, [...take.map(([ch]) => ch), ...take.map(([, rj]) => rj)]),
        refChosen: fromHost(take.map(([ch]) => refSeq[ch]!), [take.length]),
        refRejected: fromHost(take.map(([, rj]) => refSeq[rj]!), [take.length]),
      });
    }
    const out = await this.#updater.update(micro, lr, p.step + 1, `online DPO step ${p.step + 1}`);

    const kl = sequenceKl(logprobs, refLogprobs, mask);
    const entropies = entropy.map((row, i) => row.reduce((a, v, t) => a + (mask[i]![t] ? v : 0), 0));
    const n = scores.length;
    const metrics: Record<string, number> = {
      "objective/kl": mean(kl),
      "objective/entropy": mean(entropies),
      "objective/non_score_reward": mean(kl.map((k) => -c.beta * k)),
      "objective/rlhf_reward": mean(scores.map((s, i) => s - c.beta * kl[i]!)),
      "objective/scores": mean(scores),
      "objective/scores_margin": mean(pairs.map(([ch, rj]) => scores[ch]! - scores[rj]!)),
      ...out.metrics,
      "val/contain_eos_token": containsEos.filter(Boolean).length / n,
      beta: c.beta,
      loss: out.loss,
      grad_norm: out.gradNorm,
      learning_rate: lr,
      // Diagnostics only (no correction, see the file's head): the plain ratio, untruncated.
      ...(c.rollout_engine !== "jax-js" ? samplingMetrics(batch.generations, batch.samplingLogprobs, null) : {}),
    };
    p.step++;
    p.episode += n;
    p.rng = this.#rng.state;
    metrics.episode = p.episode;
    const text = (i: number) => batch.generations[i]!.text;
    const samples = pairs.map(([ch, rj]) => ({ prompt: batch.promptTexts[ch]!, chosen: text(ch), rejected: text(rj), chosen_score: scores[ch]!, rejected_score: scores[rj]! }));
    return { metrics, samples, loss: out.loss, learningRate: lr, generatedTokens: lengths.reduce((a, x) => a + x, 0) };
  }

  async dispose(): Promise<void> {
    this.#updater.dispose();
    await this.#rollout.dispose();
  }
}
