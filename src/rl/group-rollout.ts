// One rollout of groups, shared by the trainers that sample several completions per prompt from
// the current policy (GRPO, RLOO: G of them; online DPO: two): sample, pack, score every response
// token under the policy and the frozen reference (log-probs, by default at the sampling
// temperature, and the policy's entropies), and score the completions with the reward source. Groups are contiguous:
// rows g·G … g·G + G − 1 continue prompt g. The samples come from the run's rollout engine (the
// built-in generator, or llama.cpp: rollout-engine.ts).
import { compile, release, toHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";
import type { Params } from "../models/types.ts";
import type { Generation } from "../generation/generate.ts";
import type { LlamaCppEngineOptions, RolloutEngine } from "../generation/rollout-engine.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { RewardSource } from "./reward-source.ts";
import { responseLogprobsAt } from "./scoring.ts";
import type { PolicyParts } from "./policy-models.ts";
import { policyRolloutEngine, rolloutEngineDefaults, type RolloutEngineField } from "./rollout-engine-config.ts";
import { encodePrompts, sampleResponses } from "./rollout.ts";
import { packSequences, rowsOf, toDevice, type DeviceSequences } from "./sequences.ts";

export interface GroupSampling {
  temperature: number;
  top_k: number;
  top_p: number;
  max_completion_length: number;
}

export interface GroupBatch {
  /** Prompt index of every row. */
  rows: number[];
  /** Prompt ids and response ids (EOS appended when the model stopped) of every row. */
  prompts: number[][];
  responses: number[][];
  generations: Generation[];
  containsEos: boolean[];
  promptTexts: string[];
  /** [n, R] host rows, R = max_completion_length + 1. */
  logprobs: number[][];
  /**
   * The policy's log-probs at the sampling temperature, what an external engine's own are compared
   * with: `logprobs` itself unless those are scored at another temperature (online DPO).
   */
  samplingLogprobs: number[][];
  refLogprobs: number[][];
  entropy: number[][];
  mask: number[][];
  scores: number[];
}

export class GroupRollout {
  readonly promptIds: number[][];
  /** Every prompt is left-padded (or cut from the left) to this many columns. */
  readonly promptLength: number;
  readonly responseLength: number;
  readonly #prompts: string[];
  readonly #tokenizer: Tokenizer;
  readonly #eosIds: number[];
  readonly #sampling: GroupSampling;
  readonly #generator: RolloutEngine;
  readonly #score;

  /**
   * `scoreTemperature`: logits are divided by it when scoring (default: the sampling temperature,
   * what the policy-gradient ratios need; online DPO scores the plain model, 1). The reference runs
   * under `policy.referenceArch` when it is a model of its own (default: the policy's). Samples come
   * from `rolloutEngine` (default: the built-in generator) with llama.cpp's `engineOptions`.
   */
  constructor(
    policy: Pick<PolicyParts, "arch" | "referenceArch" | "frozen" | "adapter">,
    args: { tokenizer: Tokenizer; prompts: string[]; eosIds: number[]; sampling: GroupSampling; scoreTemperature?: number; rolloutEngine?: RolloutEngineField; engineOptions?: LlamaCppEngineOptions },
  ) {
    if (args.eosIds.length === 0) throw new Error("sampling completions needs an EOS token id");
    const { arch } = policy;
    const encoded = encodePrompts(args.tokenizer, args.prompts, arch.maxPositions, args.sampling.max_completion_length);
    this.promptIds = encoded.ids;
    this.promptLength = encoded.promptLength;
    this.responseLength = args.sampling.max_completion_length + 1;
    this.#prompts = args.prompts;
    this.#tokenizer = args.tokenizer;
    this.#eosIds = args.eosIds;
    this.#sampling = args.sampling;
    const engine = args.rolloutEngine?.rollout_engine ?? "jax-js";
    this.#generator = policyRolloutEngine(args.rolloutEngine ?? rolloutEngineDefaults, policy, args.engineOptions);
    const P = encoded.promptLength;
    const temperature = args.scoreTemperature ?? args.sampling.temperature;
    const samplingTemperature = args.sampling.temperature;
    // Only an external engine's log-probs are compared with the policy's at the sampling temperature.
    const scoresSampling = engine !== "jax-js" && temperature !== samplingTemperature;
    const referenceArch = policy.referenceArch ?? arch;
    const borrowed = (s: DeviceSequences): DeviceSequences => ({ ...s, ids: s.ids.ref, positions: s.positions.ref, attention: s.attention.ref });
    this.#score = compile((policyParams: Params, reference: Params, s: DeviceSequences) => {
      const pol = responseLogprobsAt(arch, policyParams, borrowed(s), P, scoresSampling ? [temperature, samplingTemperature] : [temperature]);
      const [ref] = responseLogprobsAt(referenceArch, reference, borrowed(s), P, [temperature]).logprobs;
      const [logprobs, samplingLogprobs] = pol.logprobs;
      return { logprobs: logprobs!, entropy: pol.entropy, refLogprobs: ref!, ...(samplingLogprobs ? { samplingLogprobs } : {}) };
    });
  }

  /** `groupSize` completions for each of `picked` prompts, sampled with `seed`, scored. */
  async sample(policy: Params, reference: Params, picked: number[], groupSize: number, seed: number, reward: RewardSource): Promise<GroupBatch> {
    const s = this.#sampling;
    const rows = picked.flatMap((i) => new Array<number>(groupSize).fill(i));
    const prompts = rows.map((i) => this.promptIds[i]!);
    const options = { temperature: s.temperature, topK: s.top_k, topP: s.top_p, maxNewTokens: s.max_completion_length, seed, eosIds: this.#eosIds };
    const { responses, generations, containsEos } = await sampleResponses(this.#generator, policy, prompts, options, this.#tokenizer);
    const R = this.responseLength;
    const packed = packSequences(prompts, responses, R, this.promptLength);
    const n = packed.batch;
    const device = toDevice(packed);
    const scored = this.#score(policy, reference, device) as { logprobs: Array; entropy: Array; refLogprobs: Array; samplingLogprobs?: Array };
    release(device);
    const promptTexts = rows.map((i) => this.#prompts[i]!);
    const logprobs = rowsOf(await toHost(scored.logprobs), n, R);
    return {
      rows,
      prompts,
      responses,
      generations,
      containsEos,
      promptTexts,
      logprobs,
      samplingLogprobs: scored.samplingLogprobs ? rowsOf(await toHost(scored.samplingLogprobs), n, R) : logprobs,
      refLogprobs: rowsOf(await toHost(scored.refLogprobs), n, R),
      entropy: rowsOf(await toHost(scored.entropy), n, R),
      mask: rowsOf(packed.responseMask, n, R),
      scores: await reward.score(promptTexts, generations.map((g) => g.text)),
    };
  }

  /** Device sequences of some rows of a batch, packed to the rollout's fixed shape (one compilation). */
  pack(batch: GroupBatch, rows: number[]): DeviceSequences {
    return toDevice(packSequences(rows.map((i) => batch.prompts[i]!), rows.map((i) => batch.responses[i]!), this.responseLength, this.promptLength));
  }

  async dispose(): Promise<void> {
    this.#score.dispose();
    await this.#generator.dispose();
  }
}
