// Reward models (TRL's RewardTrainer, InstructGPT's ranking recipe): the LM backbone plus a scalar
// head read at each sequence's last non-padding token, trained with the Bradley-Terry loss on
// every preference a record implies. A batch lays out each record's responses as rows (for pairs:
// all chosen rows, then all rejected rows) and picks the pairs out of the row scores with one-hot
// selection matrices, so a ranking of K responses costs K forward rows for its K(K−1)/2 pairs.
import { compile, fromHost, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { np, type Array } from "../engine/runtime.ts";
import { rewardModelLoss } from "../algorithms/reward-model.ts";
import type { PreferenceExample } from "../data/datasets.ts";
import { architectureFor, asSequenceClassifier, defaultPadId, SCORE_HEAD, type Architecture } from "../models/architecture.ts";
import type { ModelConfig } from "../models/config.ts";
import { disposeCache, fullBatch, withDropoutKey } from "../models/forward.ts";
import { linear } from "../models/layers.ts";
import type { LoadedModel } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import { bucketLength, floatGrid, padRows, type PaddedRows } from "./batching.ts";
import type { RewardConfig } from "./config.ts";
import type { LossFn } from "./step.ts";
import { inferencePassItems, largerOf, modelShape, plan, trainedModelItems, trainPassItems, type AdapterShape, type MemoryPlan } from "./memory-plan.ts";
import type { DeviceBatch, TrainTask } from "./trainer.ts";

/**
 * Keeps what fits: responses longer than max_length are dropped with the pairs they are in (TRL
 * drops whole pairs), and records left with no pair go. Returns the kept records and a count.
 * With "keep_end", over-long responses are cut instead: the first token (BOS) and the last
 * max_length − 1, since the score is read at the end of the response.
 */
export function fitToLength(
  examples: readonly PreferenceExample[],
  maxLength: number,
  mode: "drop" | "keep_end" = "drop",
): { kept: PreferenceExample[]; droppedPairs: number; truncated: number } {
  const kept: PreferenceExample[] = [];
  let droppedPairs = 0;
  let truncated = 0;
  for (const original of examples) {
    let e = original;
    if (mode === "keep_end" && maxLength >= 2 && e.responses.some((r) => r.length > maxLength)) {
      truncated += e.responses.filter((r) => r.length > maxLength).length;
      e = { ...e, responses: e.responses.map((r) => (r.length > maxLength ? [r[0]!, ...r.slice(r.length - (maxLength - 1))] : r)) };
    }
    const fits = e.responses.map((r) => r.length <= maxLength && r.length > 0);
    const pairs = e.pairs.filter((p) => fits[p.chosen] && fits[p.rejected]);
    droppedPairs += e.pairs.length - pairs.length;
    if (pairs.length === 0) continue;
    // Renumber the surviving responses so no row is scored for nothing.
    const used = [...new Set(pairs.flatMap((p) => [p.chosen, p.rejected]))].sort((a, b) => a - b);
    const index = new Map(used.map((r, i) => [r, i]));
    kept.push({
      responses: used.map((r) => e.responses[r]!),
      pairs: pairs.map((p) => ({ chosen: index.get(p.chosen)!, rejected: index.get(p.rejected)! })),
      ...(e.margin !== undefined ? { margin: e.margin } : {}),
    });
  }
  return { kept, droppedPairs, truncated };
}

export interface ScoreBatch extends PaddedRows {
  lastToken: Array; // [N, T] float32, one-hot at each row's last real token
}

export interface RewardBatch extends ScoreBatch {
  chosen: Array; // [P, N] float32, one-hot: row of each pair's chosen response
  rejected: Array; // [P, N] float32
  margin?: Array; // [P]
}

/** Rows right-padded to `length`, with a one-hot at each row's last real token (where the score is read). */
export function scoreBatch(rows: readonly number[][], length: number, padId: number): ScoreBatch {
  if (rows.some((r) => r.length === 0)) throw new Error("scoreBatch: an empty row has no last token to score");
  return { ...padRows(rows, length, padId), lastToken: floatGrid(rows.map((r) => r.map((_, t) => (t === r.length - 1 ? 1 : 0))), length) };
}

/**
 * The device batch for records. Row order is response 0 of every record, then response 1 of
 * every record, …: for pair data, all chosen rows and then all rejected rows.
 */
export function rewardBatch(examples: readonly PreferenceExample[], maxLength: number, padId: number): DeviceBatch<RewardBatch> {
  const rows: number[][] = [];
  const rowOf: number[][] = examples.map(() => []);
  const most = Math.max(...examples.map((e) => e.responses.length));
  for (let k = 0; k < most; k++) {
    examples.forEach((e, i) => {
      if (k < e.responses.length) {
        rowOf[i]![k] = rows.length;
        rows.push(e.responses[k]!);
      }
    });
  }
  const pairs = examples.flatMap((e, i) => e.pairs.map((p) => ({ chosen: rowOf[i]![p.chosen]!, rejected: rowOf[i]![p.rejected]!, margin: e.margin })));
  const withMargin = pairs.filter((p) => p.margin !== undefined).length;
  if (withMargin !== 0 && withMargin !== pairs.length) throw new Error("rewardBatch: some records have a margin and some do not; give every record one or none");
  const n = rows.length;
  const chosen = new Float32Array(pairs.length * n);
  const rejected = new Float32Array(pairs.length * n);
  pairs.forEach((p, j) => {
    chosen[j * n + p.chosen] = 1;
    rejected[j * n + p.rejected] = 1;
  });
  const length = bucketLength(Math.max(...rows.map((r) => r.length)), maxLength);
  const batch: RewardBatch = {
    ...scoreBatch(rows, length, padId),
    chosen: fromHost(chosen, [pairs.length, n]),
    rejected: fromHost(rejected, [pairs.length, n]),
  };
  if (withMargin > 0) batch.margin = fromHost(pairs.map((p) => p.margin!), [pairs.length]);
  return { batch, tokens: rows.reduce((s, r) => s + r.length, 0), weight: pairs.length };
}

/** One scalar per row: the final hidden state at the row's last real token · score.weight → [N]. `rng`: a training pass's dropout key. */
export function rewardScores(arch: Architecture, params: Params, b: ScoreBatch, rng?: Array): Array {
  const { hidden, present } = arch.body(params, withDropoutKey(fullBatch(b.inputIds, b.positionIds, b.attentionMask), rng)); // [N, T, D]
  disposeCache(present);
  const [n, t] = b.lastToken.shape as [number, number];
  const atLast = np.sum(hidden.mul(b.lastToken.reshape([n, t, 1])), 1); // [N, D]
  return linear(atLast, params[SCORE_HEAD]!.ref).reshape([n]); // [N]
}

/** Bradley-Terry over the batch's pairs (mean over pairs, as TRL), with its accuracy and margin metrics. */
export function rewardLoss(arch: Architecture, config: Pick<RewardConfig, "center_rewards_coefficient">): LossFn<RewardBatch> {
  return (params: Params, b: RewardBatch, rng?: Array) => {
    const scores = rewardScores(arch, params, b, rng); // [N]
    const n = scores.shape[0]!;
    const column = scores.reshape([n, 1]);
    const chosen = np.matmul(b.chosen, column.ref).reshape([b.chosen.shape[0]!]); // [P]
    const rejected = np.matmul(b.rejected, column).reshape([b.rejected.shape[0]!]); // [P]
    return rewardModelLoss(chosen, rejected, { ...(b.margin ? { margin: b.margin } : {}), centerRewardsCoefficient: config.center_rewards_coefficient });
  };
}

/**
 * A reward model from a causal LM, as transformers' AutoModelForSequenceClassification does it:
 * the backbone's weights, a fresh score head N(0, 1/√(D+1)) and a config that reloads as
 * `*ForSequenceClassification` with one label. Consumes the model's parameters.
 */
export function rewardModelFromCausalLm(model: LoadedModel, options: { seed: number; padTokenId: number }): { config: ModelConfig; arch: Architecture; params: Params } {
  if (model.config.architectures.some((a) => a.endsWith("ForSequenceClassification"))) {
    if ((model.config.num_labels ?? 2) !== 1) throw new Error(`${model.path}: a sequence classifier with num_labels = ${model.config.num_labels}; a reward model needs 1`);
    return { config: model.config, arch: model.arch, params: model.params };
  }
  const config = asSequenceClassifier(model.config, options.padTokenId);
  const arch = architectureFor(config);
  const { ["lm_head.weight"]: head, ...params } = model.params;
  if (head) release(head);
  params[SCORE_HEAD] = freshScoreHead(arch.hiddenSize, options.seed);
  return { config, arch, params };
}

/** A fresh scalar head [1, D], N(0, 1/√(D+1)) (seeded), as transformers initialises a classifier's. */
export function freshScoreHead(d: number, seed: number): Array {
  const rng = new HostRng(seed);
  return fromHost(Float32Array.from({ length: d }, () => rng.normal() / Math.sqrt(d + 1)), [1, d]);
}

/** Pad id for reward-model batches: the tokenizer's, else the config's, else the architecture's default (Llama's <unk>, GPT-2's EOS). Saved as config.pad_token_id. */
export function rewardPadId(tokenizerPad: number | null, config: ModelConfig): number {
  if (tokenizerPad !== null) return tokenizerPad;
  if (config.pad_token_id != null) return config.pad_token_id;
  return defaultPadId(config);
}

/** Scores token rows in batches (inference: gathers, no gradient). Rows must fit the model's context. */
export class RewardScorer {
  readonly #forward;
  readonly #padId: number;
  readonly #maxLength: number;

  constructor(arch: Architecture, padId: number, maxLength: number) {
    this.#forward = compile((params: Params, b: ScoreBatch) => rewardScores(arch, params, b));
    this.#padId = padId;
    this.#maxLength = maxLength;
  }

  async score(params: Params, rows: readonly number[][], batchSize = 16): Promise<number[]> {
    const out: number[] = [];
    // Sorting by length keeps padding (and the number of compiled shapes) small.
    const order = rows.map((_, i) => i).sort((a, b) => rows[a]!.length - rows[b]!.length);
    const scores = new Array<number>(rows.length);
    for (let from = 0; from < order.length; from += batchSize) {
      const idx = order.slice(from, from + batchSize);
      const chunk = idx.map((i) => rows[i]!);
      const b = scoreBatch(chunk, bucketLength(Math.max(...chunk.map((r) => r.length)), this.#maxLength), this.#padId);
      const s = await toHost(this.#forward(params, b));
      release(b);
      idx.forEach((i, j) => (scores[i] = s[j]!));
    }
    out.push(...scores);
    return out;
  }

  dispose(): void {
    this.#forward.dispose();
  }
}

/** Accuracy (share of pairs with r_chosen > r_rejected) and mean margin over every pair of every record. */
export async function evaluatePreferences(scorer: RewardScorer, params: Params, examples: readonly PreferenceExample[], batchSize = 16): Promise<{ accuracy: number; mean_margin: number; n: number }> {
  return preferenceAccuracy(await scorer.score(params, examples.flatMap((e) => e.responses), batchSize), examples);
}

/** Accuracy (share of pairs with r_chosen > r_rejected) and mean margin, from the scores of every example's responses in order. */
export function preferenceAccuracy(scores: readonly number[], examples: readonly PreferenceExample[]): { accuracy: number; mean_margin: number; n: number } {
  let offset = 0;
  let correct = 0;
  let margin = 0;
  let n = 0;
  for (const e of examples) {
    for (const p of e.pairs) {
      const d = scores[offset + p.chosen]! - scores[offset + p.rejected]!;
      if (d > 0) correct++;
      margin += d;
      n++;
    }
    offset += e.responses.length;
  }
  return { accuracy: n ? correct / n : 0, mean_margin: n ? margin / n : 0, n };
}

/** The shared trainer's task for a reward model. */
export function rewardTask(
  arch: Architecture,
  config: RewardConfig,
  data: { train: PreferenceExample[]; eval: PreferenceExample[] },
  save: Pick<TrainTask<PreferenceExample, RewardBatch>, "modelConfig" | "tokenizer">,
  padId: number,
): TrainTask<PreferenceExample, RewardBatch> {
  return {
    kind: "reward",
    config,
    ...save,
    train: data.train,
    eval: data.eval,
    fingerprintOf: (e) => [...e.responses.flatMap((r) => [...r, -1]), ...e.pairs.flatMap((p) => [p.chosen, p.rejected]), -2, Math.round((e.margin ?? 0) * 1e6)],
    makeBatch: (examples) => rewardBatch(examples, config.max_length, padId),
    loss: rewardLoss(arch, config),
  };
}

/**
 * Engine memory of reward-model training: the backbone trained with AdamW (planned from the causal
 * LM it starts from, head included: a slight overestimate), one micro-batch of records, each
 * record's responses a row of at most `length` tokens.
 */
export function rewardMemoryPlan(
  arch: Architecture,
  config: Pick<RewardConfig, "per_device_train_batch_size" | "per_device_eval_batch_size">,
  data: { responsesPerRecord: number; length: number },
  adapter?: AdapterShape,
): MemoryPlan {
  const shape = modelShape(arch);
  const rows = (n: number) => Math.max(1, n) * data.responsesPerRecord;
  const train = trainPassItems("model", shape, { rows: rows(config.per_device_train_batch_size), length: data.length, headTokens: 0 }, undefined, adapter);
  const evaluate = inferencePassItems("model", shape, { rows: rows(config.per_device_eval_batch_size), length: data.length, headTokens: 0 });
  return plan([...trainedModelItems("model", shape, adapter), ...largerOf(train, evaluate)], adapter !== undefined);
}

/** Rows per record and the longest row of preference data, for rewardMemoryPlan. */
export function rewardDataShape(examples: readonly PreferenceExample[], maxLength: number): { responsesPerRecord: number; length: number } {
  const responsesPerRecord = Math.max(1, ...examples.map((e) => e.responses.length));
  const longest = Math.max(1, ...examples.flatMap((e) => e.responses.map((r) => r.length)));
  return { responsesPerRecord, length: bucketLength(longest, maxLength) };
}
