// The PPO loop (InstructGPT / TRL's PPOTrainer): sample responses from the policy, score them with
// the reward source, add a per-token KL penalty to the frozen reference, estimate advantages with
// GAE from a value model, then several epochs of clipped policy and value updates.
//
// Choice of value model: initialised from the reward model (as TRL does) when one is given, so it
// starts out predicting something like the score; otherwise from the policy's backbone with a
// fresh `score.weight` head. Policy and value are separate networks trained by one optimizer.
//
// PPO-ptx (InstructGPT, eq. 2): with demonstration/pretraining rows and ptx_coef γ > 0, every
// mini-batch also carries as many rows of that data, and γ × their next-token loss is added to
// the PPO loss, so the policy keeps the language it had while chasing the reward.
import { compile, fromHost, release, toHost } from "../engine/arrays.ts";
import { drawFromCycle, HostRng } from "../engine/random.ts";
import { freshProgress, nextPrompts, type OnPolicyProgress } from "./on-policy-progress.ts";
import { learningRateAt } from "../engine/schedule.ts";
import type { AdamWState } from "../engine/optim.ts";
import type { Array } from "../engine/runtime.ts";
import type { Architecture } from "../models/architecture.ts";
import type { Params } from "../models/types.ts";
import type { LlamaCppEngineOptions, RolloutEngine } from "../generation/rollout-engine.ts";
import { policyRolloutEngine } from "./rollout-engine-config.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { HeadLoss } from "../train/step.ts";
import { PolicyUpdater } from "./policy-updater.ts";
import { updaterOptions, type PolicyParts } from "./policy-models.ts";
import type { LoraConfig } from "../models/lora.ts";
import type { SavedModel } from "../train/checkpoint.ts";
import type { ModelConfig } from "../models/config.ts";
import { encodePrompts, mean, rolloutCorrection, sampleResponses } from "./rollout.ts";
import type { OnPolicyStepReport, OnPolicyTrainer } from "./on-policy-run.ts";
import { ppoUpdateRows, type PpoRunConfig } from "./ppo-config.ts";
import { klControllerFromState, type KlController, type KlControllerState } from "../algorithms/kl.ts";
import { ppoAdvantages, ppoLoss, ppoRewards, ppoRolloutMetrics } from "../algorithms/ppo.ts";
import type { Rows } from "../algorithms/sequence.ts";
import type { RewardSource } from "./reward-source.ts";
import { responseHidden, responseLogprobs, responseTargets, responseValues } from "./scoring.ts";
import { packSequences, rowsOf, toDevice, type DeviceSequences } from "./sequences.ts";
import { sftBatch, sftRows, type SftBatch, type SftRow } from "../train/sft.ts";
import type { SftExample } from "../data/datasets.ts";
import { maskedNll, nextTokenHidden, nextTokenTargets } from "../models/forward.ts";

/** Everything that changes during a run; with the arrays saved, a run resumes exactly. */
export interface PpoProgress extends OnPolicyProgress {
  kl: KlControllerState;
  /** PPO-ptx data order and position (absent when the run has no ptx data). */
  ptxOrder?: number[];
  ptxCursor?: number;
}

export interface PpoModels extends PolicyParts {
  valueConfig: ModelConfig;
  valueArch: Architecture;
  /** The value model's trained parameters: a whole model, or with `valueAdapter` an adapter and head on the policy's frozen base. */
  value: Params;
  /** LoRA: the value model is this adapter (its `score` head in modules_to_save) on the policy's frozen base. */
  valueAdapter?: LoraConfig;
}

/** What samples.jsonl keeps of a response. */
export type PpoSample = { prompt: string; completion: string; score: number };

/** The value model's parameters carry this prefix in the trainer (and its optimizer moments); the policy's none. */
const VALUE = "value/";

interface Minibatch {
  seq: DeviceSequences;
  oldLogprobs: Array;
  oldValues: Array;
  advantages: Array;
  returns: Array;
  /** Truncated importance weights of the rollout's tokens (an external engine with the correction on). */
  importanceWeights?: Array;
  ptx?: SftBatch;
}

export class PpoTrainer implements OnPolicyTrainer<PpoProgress> {
  readonly config: PpoRunConfig;
  readonly #models: PpoModels;
  readonly #tokenizer: Tokenizer;
  readonly #prompts: string[];
  readonly #promptIds: number[][];
  readonly #reward: RewardSource;
  readonly #eosIds: number[];
  readonly #generator: RolloutEngine;
  readonly #score;
  /** Policy and value parameters together, the value's under the `value/` prefix: one optimizer over both. */
  readonly #updater: PolicyUpdater<Minibatch>;
  /** Every prompt is left-padded (or cut from the left) to this many tokens. */
  readonly #promptLength: number;
  readonly #valueConfig: ModelConfig;
  /** PPO-ptx rows and their fixed padded length (one compiled shape); null when off. */
  readonly #ptx: { rows: SftRow[]; length: number; padId: number } | null;
  #kl: KlController;
  #rng: HostRng;
  progress: PpoProgress;

  constructor(args: {
    config: PpoRunConfig;
    models: PpoModels;
    tokenizer: Tokenizer;
    prompts: string[];
    reward: RewardSource;
    eosIds: number[];
    /** PPO-ptx data (used when config.ptx_coef > 0): rendered demonstrations or plain text. */
    ptx?: { examples: SftExample[]; padId: number };
    resume?: { progress: PpoProgress; optimizer: AdamWState };
    /** Settings of an external rollout engine (llama.cpp's threads, cache, LoRA sync); its defaults otherwise. */
    engineOptions?: LlamaCppEngineOptions;
  }) {
    const { config, models } = args;
    this.config = config;
    this.#models = models;
    this.#tokenizer = args.tokenizer;
    this.#prompts = args.prompts;
    const encoded = encodePrompts(args.tokenizer, args.prompts, models.arch.maxPositions, config.response_length);
    const P = encoded.promptLength;
    this.#promptLength = P;
    this.#promptIds = encoded.ids;
    this.#valueConfig = models.valueConfig;
    this.#reward = args.reward;
    this.#eosIds = args.eosIds;
    this.#generator = policyRolloutEngine(config, models, args.engineOptions);
    const { arch, valueArch } = models;
    const referenceArch = models.referenceArch ?? arch;
    const promptLength = P;
    if (config.ptx_coef > 0) {
      if (!args.ptx || args.ptx.examples.length === 0) throw new Error("ptx_coef > 0 needs PPO-ptx data");
      // As long as a rollout row, so the extra rows cost about what the PPO rows do.
      const length = Math.min(models.arch.maxPositions, P + config.response_length + 1);
      const rows = sftRows(args.ptx.examples, { max_length: length, packing: false, completion_only_loss: true });
      if (rows.length === 0) throw new Error("the PPO-ptx data has no trainable tokens");
      this.#ptx = { rows, length, padId: args.ptx.padId };
    } else this.#ptx = null;
    const ptxCoef = config.ptx_coef;
    const sampling = config.temperature > 0 ? config.temperature : 1;
    const seqOf = (s: DeviceSequences) => ({ ids: s.ids.ref, positions: s.positions.ref, attention: s.attention.ref });
    this.#score = compile((policy: Params, reference: Params, value: Params, s: DeviceSequences) => {
      const pol = responseLogprobs(arch, policy, { ...s, ...seqOf(s) }, promptLength, config.temperature);
      const ref = responseLogprobs(referenceArch, reference, { ...s, ...seqOf(s) }, promptLength, config.temperature);
      return { logprobs: pol.logprobs, entropy: pol.entropy, refLogprobs: ref.logprobs, values: responseValues(valueArch, value, s, promptLength) };
    });
    // The frozen base (LoRA) reaches the loss among the policy's parameters; a value adapter reads it too.
    const sharedBase = models.valueAdapter ? Object.keys(models.frozen ?? {}) : [];
    const split = (params: Params) => {
      const policy: Params = {};
      const value: Params = {};
      for (const [k, v] of Object.entries(params)) {
        if (k.startsWith(VALUE)) value[k.slice(VALUE.length)] = v;
        else policy[k] = v;
      }
      return { policy, value: { ...Object.fromEntries(sharedBase.map((k) => [k, policy[k]!])), ...value } };
    };
    // The head scores the response tokens (at the sampling temperature) and, with PPO-ptx, the
    // next tokens of the ptx rows (plain); the value model's outputs ride along as `extra`.
    const lossFn: HeadLoss<Minibatch, { values: Array }> = {
      headWeight: arch.lmHeadName,
      temperatures: this.#ptx ? [sampling, 1] : [sampling],
      body: (params, mb) => {
        const { policy, value } = split(params);
        const hidden = [responseHidden(arch, policy, seqOf(mb.seq), promptLength)];
        if (mb.ptx) hidden.push(nextTokenHidden(arch, policy, { inputIds: mb.ptx.inputIds, positionIds: mb.ptx.positionIds, bias: mb.ptx.bias }));
        return { hidden, extra: { values: responseValues(valueArch, value, mb.seq, promptLength) } };
      },
      targets: (mb) => [responseTargets(mb.seq.ids, promptLength), ...(mb.ptx ? [nextTokenTargets(mb.ptx.inputIds)] : [])],
      loss: ([responseLogps, ptxLogps], { values }, mb) => {
        const s = mb.seq;
        const logprobs = responseLogps!.reshape(s.responseMask.shape);
        const weights = mb.importanceWeights ? { importanceWeights: mb.importanceWeights } : {};
        const out = ppoLoss({ logprobs, oldLogprobs: mb.oldLogprobs, advantages: mb.advantages, mask: s.responseMask, values, oldValues: mb.oldValues, returns: mb.returns, ...weights }, config);
        if (!mb.ptx) return out;
        const [rows, t] = mb.ptx.lossMask.shape as [number, number];
        const lm = maskedNll(ptxLogps!.reshape([rows, t - 1]), mb.ptx.lossMask);
        return { loss: out.loss.add(lm.ref.mul(ptxCoef)), metrics: { ...out.metrics, "loss/ptx_avg": lm } };
      },
    };
    const params = { ...models.policy };
    for (const [k, v] of Object.entries(models.value)) params[VALUE + k] = v;
    this.#updater = new PolicyUpdater(lossFn, config, params, updaterOptions(models, args.resume?.optimizer));
    if (args.resume) {
      this.progress = args.resume.progress;
    } else {
      const kl: KlControllerState =
        config.target_kl !== null ? { kind: "adaptive", value: config.kl_coef, target: config.target_kl, horizon: config.kl_horizon } : { kind: "fixed", value: config.kl_coef };
      this.progress = { ...freshProgress(config.seed, args.prompts.length), kl };
      if (this.#ptx) {
        this.progress.ptxOrder = new HostRng(config.seed + 1).shuffle(this.#ptx.rows.map((_, i) => i));
        this.progress.ptxCursor = 0;
      }
    }
    this.#rng = new HostRng(this.progress.rng);
    this.#kl = klControllerFromState(this.progress.kl);
  }

  /** The current trained policy / value parameters (owned by the trainer; don't release). */
  get policy(): Params {
    return Object.fromEntries(Object.entries(this.#updater.params).filter(([k]) => !k.startsWith(VALUE)));
  }
  get value(): Params {
    return unprefix(this.#updater.params, VALUE);
  }
  /** What passes of the policy and the value model read: the trained parameters over the frozen base (LoRA). */
  #passParams(): { policy: Params; value: Params } {
    const frozen = this.#models.frozen ?? {};
    return { policy: { ...frozen, ...this.policy }, value: this.#models.valueAdapter ? { ...frozen, ...this.value } : this.value };
  }
  get others(): Record<string, SavedModel> {
    const adapter = this.#models.valueAdapter;
    return { value: { config: this.#valueConfig, params: this.value, ...(adapter ? { adapter } : {}) } };
  }
  get optimizerState(): AdamWState {
    return this.#updater.optimizerState;
  }

  /** The next `n` PPO-ptx rows as a device batch (reshuffled after each pass, from the run's RNG). */
  #nextPtx(n: number): SftBatch | undefined {
    const ptx = this.#ptx;
    if (!ptx) return undefined;
    const p = this.progress;
    if (!p.ptxOrder || p.ptxCursor === undefined) throw new Error("this PPO run was started without PPO-ptx data; it cannot resume with it");
    const next = drawFromCycle(p.ptxOrder, p.ptxCursor, n, this.#rng);
    [p.ptxOrder, p.ptxCursor] = [next.order, next.cursor];
    return sftBatch(next.picked.map((i) => ptx.rows[i]!), ptx.length, ptx.padId).batch;
  }

  /** One PPO iteration: rollout, scoring, advantages, num_ppo_epochs × num_mini_batches updates. */
  async step(): Promise<OnPolicyStepReport<PpoSample>> {
    const c = this.config;
    const picked = nextPrompts(this.progress, this.config.batch_size, this.#rng);
    const prompts = picked.map((i) => this.#promptIds[i]!);
    const { policy, value } = this.#passParams();
    const sampleOptions = { temperature: c.temperature, topK: c.top_k, topP: c.top_p, maxNewTokens: c.response_length, seed: this.#rng.nextUint32(), eosIds: this.#eosIds };
    const started = performance.now();
    const { generations: gens, responses, containsEos } = await sampleResponses(this.#generator, policy, prompts, sampleOptions, this.#tokenizer);
    const sampled = performance.now();
    const packed = packSequences(prompts, responses, c.response_length + 1, this.#promptLength);
    const b = packed.batch;
    const r = packed.responseLength;
    const device = toDevice(packed);
    const scored = this.#score(policy, this.#models.reference, value, device);
    const [logprobs, entropy, refLogprobs, values] = [
      rowsOf(await toHost(scored.logprobs), b, r),
      rowsOf(await toHost(scored.entropy), b, r),
      rowsOf(await toHost(scored.refLogprobs), b, r),
      rowsOf(await toHost(scored.values), b, r),
    ];
    const mask = rowsOf(packed.responseMask, b, r);
    const promptTexts = picked.map((i) => this.#prompts[i]!);
    const scores = await this.#reward.score(promptTexts, gens.map((g) => g.text));

    const rewards = ppoRewards({ logprobs, refLogprobs, mask, scores, containsEos }, { kl_coef: this.#kl.value, kl_estimator: c.kl_estimator, missing_eos_penalty: c.missing_eos_penalty });
    const { advantages, returns } = ppoAdvantages(rewards.rewards, values, mask, c);
    const metrics: Record<string, number> = ppoRolloutMetrics(rewards, entropy, mask, containsEos);
    metrics["response_length"] = mean(mask.map((row) => row.reduce((a, x) => a + x, 0)));
    const { metrics: samplingReport, weights } = rolloutCorrection(c, gens, logprobs);
    Object.assign(metrics, samplingReport);

    const scoredAt = performance.now();
    // Updates.
    const updateMetrics: Record<string, number[]> = {};
    const lr = learningRateAt({ name: c.lr_scheduler_type, learningRate: c.learning_rate, warmupSteps: 0, totalSteps: c.total_steps }, this.progress.step);
    // Each mini-batch's gradient is accumulated over gradient_accumulation_steps micro-batches.
    const { miniBatch: mbSize, microBatch: microSize } = ppoUpdateRows(b, c);
    let optimizerSteps = 0;
    for (let epoch = 0; epoch < c.num_ppo_epochs; epoch++) {
      const order = this.#rng.shuffle(Array.from({ length: b }, (_, i) => i));
      for (let start = 0; start + mbSize <= b; start += mbSize) {
        const micro: Minibatch[] = [];
        for (let from = start; from + microSize <= start + mbSize; from += microSize) {
          const rows = order.slice(from, from + microSize);
          const mb = minibatch(prompts, responses, rows, r, this.#promptLength, { logprobs, values, advantages, returns, ...(weights ? { weights } : {}) });
          const ptx = this.#nextPtx(rows.length);
          if (ptx) mb.ptx = ptx;
          micro.push(mb);
        }
        optimizerSteps++;
        const out = await this.#updater.update(micro, lr, this.progress.step * c.num_ppo_epochs * c.num_mini_batches + optimizerSteps, `PPO step ${this.progress.step + 1}`);
        for (const [k, v] of Object.entries(out.metrics)) (updateMetrics[k] ??= []).push(v);
      }
    }
    release(device);
    for (const [k, v] of Object.entries(updateMetrics)) metrics[k] = mean(v);
    this.#kl.update(metrics["objective/kl"]!, b);
    this.progress.step++;
    this.progress.episode += b;
    this.progress.kl = this.#kl.state();
    this.progress.rng = this.#rng.state;
    metrics["lr"] = lr;
    metrics["episode"] = this.progress.episode;
    metrics["kl_coef"] = this.#kl.value;
    const phaseSeconds = { generation: (sampled - started) / 1000, scoring: (scoredAt - sampled) / 1000, update: (performance.now() - scoredAt) / 1000 };
    const samples = gens.map((g, i) => ({ prompt: promptTexts[i]!, completion: g.text, score: scores[i]! }));
    return { metrics, samples, loss: metrics["loss/policy_avg"] ?? NaN, learningRate: lr, generatedTokens: mask.flat().reduce((a, x) => a + x, 0), phaseSeconds };
  }

  async dispose(): Promise<void> {
    this.#score.dispose();
    this.#updater.dispose();
    await this.#generator.dispose();
  }
}

function unprefix(params: Params, prefix: string): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(params)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}

function minibatch(
  prompts: number[][],
  responses: number[][],
  rows: number[],
  responseLength: number,
  promptLength: number,
  data: { logprobs: Rows; values: Rows; advantages: Rows; returns: Rows; weights?: Rows },
): Minibatch {
  const packed = packSequences(rows.map((i) => prompts[i]!), rows.map((i) => responses[i]!), responseLength, promptLength);
  const pick = (x: Rows) => Float32Array.from(rows.flatMap((i) => x[i]!));
  const shape = [rows.length, responseLength];
  return {
    seq: toDevice(packed),
    oldLogprobs: fromHost(pick(data.logprobs), shape),
    oldValues: fromHost(pick(data.values), shape),
    advantages: fromHost(pick(data.advantages), shape),
    returns: fromHost(pick(data.returns), shape),
    ...(data.weights ? { importanceWeights: fromHost(pick(data.weights), shape) } : {}),
  };
}
