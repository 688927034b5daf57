// KTO (TRL's KTOTrainer) on the shared training loop. Every example is one labelled completion;
// for loss_type "kto" it also carries a mismatched completion, another example's, on which the
// batch's KL reference point is estimated. Those are chosen once, before training, as TRL chooses
// them (each example takes its batch neighbour's completion), so a resumed run sees the same ones.
// The reference model's log-probs of both are computed once too and travel with the examples
// (TRL's precompute_ref_log_probs), so training holds one model. A batch of B examples is one
// forward pass over B completion rows and, for "kto", B KL rows; only completion tokens count.
import { compile, fromHost, intsFromHost, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import type { Array } from "../engine/runtime.ts";
import { ktoLosses, ktoUsesKl } from "../algorithms/kto.ts";
import { sequenceLogps } from "../algorithms/sequence.ts";
import { fitKtoExample, type KtoExample } from "../data/kto-data.ts";
import type { Architecture } from "../models/architecture.ts";
import { fullBatch, nextTokenHidden, nextTokenTargets } from "../models/forward.ts";
import type { Params } from "../models/types.ts";
import { completionLogps } from "./dpo.ts";
import { checkKTOConfig, type KTOTrainingConfig } from "./kto-config.ts";
import { inferencePassItems, largerOf, modelShape, plan, trainPassItems, weightItems, type MemoryItem, type MemoryPlan } from "./memory-plan.ts";
import { bucketLength } from "./reward.ts";
import type { HeadLoss } from "./step.ts";
import type { DeviceBatch, TrainTask } from "./trainer.ts";

/** An example with its mismatched completion (null when the loss type has no KL term). */
export interface KtoPaired extends KtoExample {
  klCompletion: number[] | null;
}

/** An example with the reference model's sequence log-probs of its completion and its KL completion. */
export interface KtoItem extends KtoPaired {
  refLogp: number;
  refKlLogp: number | null;
}

export interface KtoSequences {
  inputIds: Array; // [R, T] int32: B completion rows, then (kto) B KL rows, right-padded
  positionIds: Array; // [R, T] int32
  attentionMask: Array; // [R, T] float32, 1 for real tokens
  completionMask: Array; // [R, T] float32, 1 for completion tokens
}

export interface KtoBatch extends KtoSequences {
  reference: Array; // [B]
  referenceKl?: Array; // [B], kto only
  labels: Array; // [B] float32, 1 desirable
}

/** Longest sequence a batch row may have: max_length, at most the model's context. */
export function ktoMaxLength(config: Pick<KTOTrainingConfig, "max_length">, arch: Architecture): number {
  return Math.min(config.max_length ?? Infinity, arch.maxPositions);
}

function lengthLimits(config: KTOTrainingConfig, arch: Architecture) {
  return { max_length: ktoMaxLength(config, arch), max_prompt_length: config.max_prompt_length, max_completion_length: config.max_completion_length };
}

/** Examples cut to the config's lengths (fitKtoExample), and how many were cut. */
export function fitKtoExamples(examples: readonly KtoExample[], config: KTOTrainingConfig, arch: Architecture): { examples: KtoExample[]; truncated: number } {
  const fitted = examples.map((e) => fitKtoExample(e, lengthLimits(config, arch)));
  return { examples: fitted.map((f) => f.example), truncated: fitted.filter((f) => f.truncated).length };
}

/**
 * TRL's mismatched pairs: along `order`, in consecutive groups of `groupSize` (the batches), each
 * example takes the completion of the one before it in its group, the first the last's, so a
 * group's KL completions are its own completions on other prompts. A last group of one joins the
 * one before it. Each is cut to what its prompt leaves (max_length, max_completion_length).
 */
export function withKlCompletions(examples: readonly KtoExample[], order: readonly number[], groupSize: number, config: KTOTrainingConfig, arch: Architecture): KtoPaired[] {
  const limits = lengthLimits(config, arch);
  const out: KtoPaired[] = examples.map((e) => ({ ...e, klCompletion: null }));
  for (let from = 0; from < order.length; ) {
    let to = Math.min(order.length, from + groupSize);
    if (order.length - to === 1) to = order.length;
    const group = order.slice(from, to);
    group.forEach((i, j) => {
      const e = examples[i]!;
      const partner = examples[group[(j + group.length - 1) % group.length]!]!;
      out[i]!.klCompletion = fitKtoExample({ prompt: e.prompt, completion: partner.completion, label: e.label }, limits).example.completion;
    });
    from = to;
  }
  return out;
}

/**
 * The mismatched completions of a run's splits, grouped as the shared loop batches them: the
 * training examples in the order of train()'s first epoch (HostRng(seed)'s shuffle) in groups of
 * per_device_train_batch_size, so that in that epoch every batch estimates its KL term on its own
 * completions, as TRL's sequential batches do (later epochs reshuffle the batches but keep the
 * pairs); the held-out ones in file order in groups of per_device_eval_batch_size, as evaluated.
 * Deterministic given the seed. Without a KL term (apo_zero_unpaired) there are none.
 */
export function withKlSplits(data: { train: readonly KtoExample[]; eval: readonly KtoExample[] }, config: KTOTrainingConfig, arch: Architecture): { train: KtoPaired[]; eval: KtoPaired[] } {
  if (!ktoUsesKl(config.loss_type)) return { train: data.train.map((e) => ({ ...e, klCompletion: null })), eval: data.eval.map((e) => ({ ...e, klCompletion: null })) };
  const indices = (n: number) => Array.from({ length: n }, (_, i) => i);
  const firstEpoch = new HostRng(config.seed).shuffle(indices(data.train.length));
  return {
    train: withKlCompletions(data.train, firstEpoch, config.per_device_train_batch_size, config, arch),
    eval: withKlCompletions(data.eval, indices(data.eval.length), config.per_device_eval_batch_size, config, arch),
  };
}

/** The rows of a batch: every completion, then every KL completion when there are any. */
function rowsOf(examples: readonly KtoPaired[]): { prompt: number[]; completion: number[] }[] {
  const rows = examples.map((e) => ({ prompt: e.prompt, completion: e.completion }));
  if (examples[0]?.klCompletion) rows.push(...examples.map((e) => ({ prompt: e.prompt, completion: e.klCompletion! })));
  return rows;
}

/** Rows right-padded to a bucketed length of at most maxLength, with their completion masks. */
export function ktoSequences(examples: readonly KtoPaired[], maxLength: number, padId: number): { sequences: KtoSequences; tokens: number } {
  const rows = rowsOf(examples);
  const longest = Math.max(...rows.map((r) => r.prompt.length + r.completion.length));
  if (longest > maxLength) throw new Error(`ktoSequences: a row has ${longest} tokens, more than max_length ${maxLength} (fit the examples first)`);
  const [n, t] = [rows.length, bucketLength(longest, maxLength)];
  const ids = new Int32Array(n * t).fill(padId);
  const pos = new Int32Array(n * t);
  const attn = new Float32Array(n * t);
  const completion = new Float32Array(n * t);
  let tokens = 0;
  rows.forEach(({ prompt, completion: c }, r) => {
    [...prompt, ...c].forEach((id, i) => {
      ids[r * t + i] = id;
      pos[r * t + i] = i;
      attn[r * t + i] = 1;
      completion[r * t + i] = i >= prompt.length ? 1 : 0;
    });
    tokens += prompt.length + c.length;
  });
  const sequences = { inputIds: intsFromHost(ids, [n, t]), positionIds: intsFromHost(pos, [n, t]), attentionMask: fromHost(attn, [n, t]), completionMask: fromHost(completion, [n, t]) };
  return { sequences, tokens };
}

/**
 * The reference model's sequence log-probs of every example's completion and KL completion,
 * computed once (no gradient), in batches of similar length. `params` are borrowed.
 */
export async function withReferenceLogps(
  arch: Architecture,
  params: Params,
  examples: readonly KtoPaired[],
  config: KTOTrainingConfig,
  padId: number,
  onProgress?: (done: number, total: number) => void,
): Promise<KtoItem[]> {
  const forward = compile((p: Params, s: KtoSequences) => completionLogps(arch, p, s, false));
  const maxLength = ktoMaxLength(config, arch);
  const size = config.per_device_eval_batch_size;
  const rowLength = (e: KtoPaired) => e.prompt.length + Math.max(e.completion.length, e.klCompletion?.length ?? 0);
  const order = examples.map((_, i) => i).sort((a, b) => rowLength(examples[a]!) - rowLength(examples[b]!));
  const out = new Array<KtoItem>(examples.length);
  try {
    for (let from = 0; from < order.length; from += size) {
      const idx = order.slice(from, from + size);
      const { sequences } = ktoSequences(idx.map((i) => examples[i]!), maxLength, padId);
      const logps = await toHost(forward(params, sequences)); // [B] or [2B]
      release(sequences);
      idx.forEach((i, j) => (out[i] = { ...examples[i]!, refLogp: logps[j]!, refKlLogp: examples[i]!.klCompletion ? logps[idx.length + j]! : null }));
      onProgress?.(from + idx.length, examples.length);
    }
  } finally {
    forward.dispose();
  }
  return out;
}

/** The device batch with the cached reference log-probs; its weight is the example count. */
export function ktoBatch(items: readonly KtoItem[], maxLength: number, padId: number): DeviceBatch<KtoBatch> {
  const { sequences, tokens } = ktoSequences(items, maxLength, padId);
  const n = items.length;
  const batch: KtoBatch = {
    ...sequences,
    reference: fromHost(items.map((e) => e.refLogp), [n]),
    labels: fromHost(items.map((e) => (e.label ? 1 : 0)), [n]),
    ...(items[0]?.klCompletion ? { referenceKl: fromHost(items.map((e) => e.refKlLogp!), [n]) } : {}),
  };
  return { batch, tokens, weight: n };
}

/** The config's KTO loss over a batch, with TRL's metrics (kl, rewards/*_sum, logps/*_sum, count/*). */
export function ktoHeadLoss(arch: Architecture, config: KTOTrainingConfig): HeadLoss<KtoBatch, Record<string, never>> {
  const loss = ktoLosses[config.loss_type];
  return {
    headWeight: arch.lmHeadName,
    temperatures: [1],
    body: (params, b) => ({ hidden: [nextTokenHidden(arch, params, fullBatch(b.inputIds, b.positionIds, b.attentionMask))], extra: {} }),
    targets: (b) => [nextTokenTargets(b.inputIds)],
    loss: ([tokenLogps], _extra, b) => {
      const [n, t] = b.inputIds.shape as [number, number];
      // A completion token at position 0 has nothing predicting it and is skipped.
      const mask = b.completionMask.slice([], [1, t]).reshape([n, t - 1]);
      const logps = sequenceLogps(tokenLogps!.reshape([n, t - 1]), mask); // [R]
      const size = b.labels.shape[0]!;
      const kl = b.referenceKl ? { policyKl: logps.ref.slice([size, 2 * size]), referenceKl: b.referenceKl } : {};
      return loss({ policy: logps.slice([0, size]), reference: b.reference, labels: b.labels, ...kl }, config);
    },
  };
}

/** The shared trainer's task for KTO over examples that already carry their reference log-probs. */
export function ktoTask(
  arch: Architecture,
  config: KTOTrainingConfig,
  data: { train: KtoItem[]; eval: KtoItem[] },
  save: Pick<TrainTask<KtoItem, KtoBatch>, "modelConfig" | "tokenizer" | "generationConfig">,
  padId: number,
): TrainTask<KtoItem, KtoBatch> {
  checkKTOConfig(config);
  const maxLength = ktoMaxLength(config, arch);
  return {
    kind: "kto",
    config,
    ...save,
    train: data.train,
    eval: data.eval,
    fingerprintOf: (e) => [...e.prompt, -1, ...e.completion, e.label ? -2 : -3, ...(e.klCompletion ?? [])],
    makeBatch: (items) => ktoBatch(items, maxLength, padId),
    loss: ktoHeadLoss(arch, config),
  };
}

/**
 * Engine memory of a KTO run: the policy trained with AdamW on micro-batches of B rows (2B with
 * the KL rows) of at most `length` tokens; before training, the reference's log-probs (the
 * starting model's, or a separate `reference` model's weights alongside).
 */
export function ktoMemoryPlan(arch: Architecture, config: Pick<KTOTrainingConfig, "per_device_train_batch_size" | "per_device_eval_batch_size" | "loss_type">, length: number, reference?: Architecture): MemoryPlan {
  const shape = modelShape(arch);
  const rowsPerExample = ktoUsesKl(config.loss_type) ? 2 : 1;
  const rows = rowsPerExample * config.per_device_train_batch_size;
  const train = trainPassItems("policy", shape, { rows, length, headTokens: rows * (length - 1) });
  const evalRows = rowsPerExample * config.per_device_eval_batch_size;
  const scoring: MemoryItem[] = [
    ...(reference ? weightItems("reference", modelShape(reference), false) : []),
    ...inferencePassItems(reference ? "reference" : "policy", reference ? modelShape(reference) : shape, { rows: evalRows, length, headTokens: evalRows * (length - 1) }),
  ];
  return plan([...weightItems("policy", shape, true), ...largerOf(train, scoring)]);
}

/** The padded row length of a set of examples (prompt + the longer of its completions, bucketed). */
export function ktoRowLength(examples: readonly KtoPaired[], maxLength: number): number {
  const longest = Math.max(1, ...examples.map((e) => e.prompt.length + Math.max(e.completion.length, e.klCompletion?.length ?? 0)));
  return bucketLength(longest, maxLength);
}

/**
 * TRL's advice when desirable and undesirable examples are unbalanced (the KTO paper's eq. 8):
 * desirable_weight · n_desirable should be 1 to 4/3 times undesirable_weight · n_undesirable.
 * Null when the weights are in range (or the counts equal).
 */
export function ktoWeightAdvice(examples: readonly KtoExample[], config: Pick<KTOTrainingConfig, "desirable_weight" | "undesirable_weight">): string | null {
  const desirable = Math.max(1, examples.filter((e) => e.label).length);
  const undesirable = Math.max(1, examples.length - desirable);
  if (desirable === undesirable) return null;
  const round = (x: number) => Math.round(x * 100) / 100;
  const [dLow, dHigh] = [round((undesirable * config.undesirable_weight) / desirable), round(((undesirable * config.undesirable_weight) / desirable) * 1.33)];
  const [uLow, uHigh] = [round((desirable * config.desirable_weight) / undesirable / 1.33), round((desirable * config.desirable_weight) / undesirable)];
  const inRange = (dLow <= config.desirable_weight && config.desirable_weight <= dHigh) || (uLow <= config.undesirable_weight && config.undesirable_weight <= uHigh);
  return inRange ? null : `${desirable} desirable and ${undesirable} undesirable examples: set desirable_weight in [${dLow}, ${dHigh}] or undesirable_weight in [${uLow}, ${uHigh}] (not both)`;
}

/**
 * The per-example means TRL prints, from a logged record's sums and counts (a record's values are
 * means over its micro-batches, so their ratios weigh every example once): rewards/chosen,
 * rewards/rejected and their margin, logps/chosen and logps/rejected. `prefix` "eval_" reads a
 * held-out record. NaN where a record had no example of that kind.
 */
export function ktoMeans(record: Record<string, number>, prefix = ""): { chosen: number; rejected: number; margin: number; logpsChosen: number; logpsRejected: number; kl: number } {
  const per = (sum: string, kind: "chosen" | "rejected") => record[`${prefix}${sum}/${kind}_sum`]! / record[`${prefix}count/${kind}`]!;
  const [chosen, rejected] = [per("rewards", "chosen"), per("rewards", "rejected")];
  return { chosen, rejected, margin: chosen - rejected, logpsChosen: per("logps", "chosen"), logpsRejected: per("logps", "rejected"), kl: record[`${prefix}kl`]! };
}
