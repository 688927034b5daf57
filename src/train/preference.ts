// What the reference-based offline preference trainers (DPO, KTO, and the next one) share. Each
// says how its examples become completion rows (a PreferenceLayout: a DPO pair gives its chosen
// and its rejected row, a KTO example its completion and, for loss_type kto, a mismatched one);
// from that follow its batches (every example's first completion, then every example's second, …,
// right-padded by batching.ts), the reference model's sequence log-probs, computed once before
// training in length-sorted batches (TRL's precompute_ref_log_probs, so training holds one model),
// the loss's forward pass (only completion tokens count), the row length and the memory plan.
import { compile, release, toHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";
import type { LossOutput } from "../algorithms/loss.ts";
import { averageSequenceLogps, sequenceLogps } from "../algorithms/sequence.ts";
import type { DpoLengths } from "../data/dpo-data.ts";
import type { Architecture } from "../models/architecture.ts";
import { fullBatch, nextTokenHidden, nextTokenLogprobs, nextTokenTargets, withDropoutKey } from "../models/forward.ts";
import type { Params } from "../models/types.ts";
import { bucketLength, completionSequences, type CompletionSequences } from "./batching.ts";
import type { TrainingArguments } from "./config.ts";
import { FLOAT_BYTES, inferencePassItems, largerOf, modelShape, plan, trainedModelItems, trainPassItems, weightItems, type AdapterShape, type MemoryItem, type MemoryPlan } from "./memory-plan.ts";
import type { PreferenceTrainingArguments } from "./preference-config.ts";
import type { HeadLoss, RowValues } from "./step.ts";

/** How an algorithm's examples become rows of prompt + completion. */
export interface PreferenceLayout<E extends { prompt: readonly number[] }> {
  /** The completions read after an example's prompt, in row order; every example of a batch has as many. */
  completions(example: E): readonly (readonly number[])[];
  /** Length-averaged sequence log-probs instead of sums (what TRL feeds IPO). */
  average: boolean;
}

/** Longest sequence a batch row may have: max_length, at most the model's context. */
export function preferenceMaxLength(config: Pick<PreferenceTrainingArguments, "max_length">, arch: Architecture): number {
  return Math.min(config.max_length ?? Infinity, arch.maxPositions);
}

/** The config's length limits, max_length at most the model's context. */
export function preferenceLimits(config: Pick<PreferenceTrainingArguments, "max_length" | "max_prompt_length" | "max_completion_length">, arch: Architecture): DpoLengths {
  return { max_length: preferenceMaxLength(config, arch), max_prompt_length: config.max_prompt_length, max_completion_length: config.max_completion_length };
}

/** Examples cut to the config's lengths by `fit` (the algorithm's: fitDpoExample, fitKtoExample), and how many were cut. */
export function fitExamples<E>(
  examples: readonly E[],
  fit: (example: E, limits: DpoLengths) => { example: E; truncated: boolean },
  config: Pick<PreferenceTrainingArguments, "max_length" | "max_prompt_length" | "max_completion_length">,
  arch: Architecture,
): { examples: E[]; truncated: number } {
  const limits = preferenceLimits(config, arch);
  const fitted = examples.map((e) => fit(e, limits));
  return { examples: fitted.map((f) => f.example), truncated: fitted.filter((f) => f.truncated).length };
}

/** The rows of a batch, right-padded to a bucketed length of at most maxLength: every example's first completion, then every example's second, … */
export function preferenceSequences<E extends { prompt: readonly number[] }>(examples: readonly E[], layout: Pick<PreferenceLayout<E>, "completions">, maxLength: number, padId: number): { sequences: CompletionSequences; tokens: number } {
  const completions = examples.map((e) => layout.completions(e));
  const perExample = completions[0]?.length ?? 0;
  if (completions.some((c) => c.length !== perExample)) throw new Error("preferenceSequences: the examples of a batch have different numbers of completions");
  const rows = Array.from({ length: perExample }, (_, k) => examples.map((e, i) => ({ prompt: e.prompt, completion: completions[i]![k]! }))).flat();
  return completionSequences(rows, maxLength, padId);
}

/**
 * Sequence log-probs per row [R] from next-token log-probs [R, T-1]: the sum over completion tokens
 * (prompt and padding masked), or with `average` the mean. A completion token at position 0 has
 * nothing predicting it and is skipped.
 */
function completionSums(tokenLogps: Array, completionMask: Array, average: boolean): Array {
  const [n, t] = completionMask.shape as [number, number];
  const mask = completionMask.slice([], [1, t]).reshape([n, t - 1]);
  return average ? averageSequenceLogps(tokenLogps, mask) : sequenceLogps(tokenLogps, mask);
}

/** log π(completion | prompt) per row [R] (see completionSums), for scoring without gradients. */
export function completionLogps(arch: Architecture, params: Params, s: CompletionSequences, average: boolean): Array {
  const logp = nextTokenLogprobs(arch, params, fullBatch(s.inputIds, s.positionIds, s.attentionMask)); // [R, T-1]: column i scores token i+1
  return completionSums(logp, s.completionMask, average);
}

/**
 * A preference loss as the shared step runs it (the LM head in blocks): one forward pass over the
 * batch's rows, and `loss` given their sequence log-probs [R] in row order (see completionSums).
 * Those are all it reads of the rows, so the step may differentiate the rows in `parts` (the
 * algorithm's: DPO's chosen rows and its rejected rows) one after another (RowValues).
 */
export function completionHeadLoss<B extends CompletionSequences>(
  arch: Architecture,
  average: boolean,
  loss: (logps: Array, batch: B) => LossOutput,
  parts: RowValues<B>["parts"],
): HeadLoss<B, Record<string, never>> {
  const values = ([tokenLogps]: Array[], b: B) => {
    const [n, t] = b.inputIds.shape as [number, number];
    return completionSums(tokenLogps!.reshape([n, t - 1]), b.completionMask, average);
  };
  return {
    headWeight: arch.lmHeadName,
    temperatures: [1],
    body: (params, b, rng) => ({ hidden: [nextTokenHidden(arch, params, withDropoutKey(fullBatch(b.inputIds, b.positionIds, b.attentionMask), rng))], extra: {} }),
    targets: (b) => [nextTokenTargets(b.inputIds)],
    loss: (tokenLogps, _extra, b) => loss(values(tokenLogps, b), b),
    rowValues: { parts, rows: (b, from, to) => ({ ...b, ...sequenceRows(b, from, to) }), values, loss },
  };
}

/** Rows [from, to) of a batch's sequences. Traced. */
function sequenceRows(s: CompletionSequences, from: number, to: number): CompletionSequences {
  const rows = (a: Array) => a.ref.slice([from, to]);
  return { inputIds: rows(s.inputIds), positionIds: rows(s.positionIds), attentionMask: rows(s.attentionMask), completionMask: rows(s.completionMask) };
}

/** Prompt + the longest completion of an example, in tokens. */
function rowLength<E extends { prompt: readonly number[] }>(e: E, layout: PreferenceLayout<E>): number {
  return e.prompt.length + Math.max(0, ...layout.completions(e).map((c) => c.length));
}

/**
 * The reference model's sequence log-probs of every example's completions (in the layout's order),
 * computed once, without gradients, in batches of `batchSize` examples of similar length. `params`
 * are borrowed.
 */
export async function referenceLogps<E extends { prompt: readonly number[] }>(
  arch: Architecture,
  params: Params,
  examples: readonly E[],
  layout: PreferenceLayout<E>,
  options: { maxLength: number; batchSize: number; padId: number },
  onProgress?: (done: number, total: number) => void,
): Promise<number[][]> {
  const forward = compile((p: Params, s: CompletionSequences) => completionLogps(arch, p, s, layout.average));
  const order = examples.map((_, i) => i).sort((a, b) => rowLength(examples[a]!, layout) - rowLength(examples[b]!, layout));
  const out = new Array<number[]>(examples.length);
  try {
    for (let from = 0; from < order.length; from += options.batchSize) {
      const idx = order.slice(from, from + options.batchSize);
      const { sequences } = preferenceSequences(idx.map((i) => examples[i]!), layout, options.maxLength, options.padId);
      const logps = await toHost(forward(params, sequences)); // [k·B]: completion k of example j at k·B + j
      release(sequences);
      idx.forEach((i, j) => (out[i] = layout.completions(examples[i]!).map((_, k) => logps[k * idx.length + j]!)));
      onProgress?.(from + idx.length, examples.length);
    }
  } finally {
    forward.dispose();
  }
  return out;
}

/** The padded row length of a set of examples (prompt + the longest completion, bucketed). */
export function preferenceRowLength<E extends { prompt: readonly number[] }>(examples: readonly E[], layout: PreferenceLayout<E>, maxLength: number): number {
  return bucketLength(Math.max(1, ...examples.map((e) => rowLength(e, layout))), maxLength);
}

/**
 * Engine memory of a preference run: the policy trained with AdamW on micro-batches of
 * rowsPerExample × per_device_train_batch_size rows of at most `length` tokens, or with `rowParts`
 * one part of per_device_train_batch_size rows at a time (RowValues: the gradients of the parts
 * done are held meanwhile); before training, the reference's log-probs (the starting model's, or a
 * separate `reference` model's weights alongside).
 */
export function preferenceMemoryPlan(
  arch: Architecture,
  rowsPerExample: number,
  config: Pick<TrainingArguments, "per_device_train_batch_size" | "per_device_eval_batch_size">,
  length: number,
  options: { reference?: Architecture; adapter?: AdapterShape; headBudget?: number; rowParts?: boolean } = {},
): MemoryPlan {
  const { reference, adapter, headBudget, rowParts = false } = options;
  const shape = modelShape(arch);
  const rows = (rowParts ? 1 : rowsPerExample) * config.per_device_train_batch_size;
  const train = trainPassItems("policy", shape, { rows, length, headTokens: rows * (length - 1) }, headBudget, adapter);
  if (rowParts) {
    const trained = FLOAT_BYTES * (adapter ? adapter.params : shape.params);
    train.push({ what: "policy gradients of a row part", bytes: trained, detail: `held while the next part runs (${rowsPerExample} parts of ${rows} rows each)` });
  }
  const evalRows = rowsPerExample * config.per_device_eval_batch_size;
  const scoring: MemoryItem[] = [
    ...(reference ? weightItems("reference", modelShape(reference), false) : []),
    ...inferencePassItems(reference ? "reference" : "policy", reference ? modelShape(reference) : shape, { rows: evalRows, length, headTokens: evalRows * (length - 1) }),
  ];
  return plan([...trainedModelItems("policy", shape, adapter), ...largerOf(train, scoring)], adapter !== undefined);
}
