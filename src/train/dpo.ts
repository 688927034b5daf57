// Direct Preference Optimisation (TRL's DPOTrainer) on the shared training loop. The reference
// model's log-probs of every pair are computed once, before training, and travel with the
// examples (TRL's precompute_ref_log_probs), so training holds one model. A batch of B pairs is
// one forward pass over 2B rows, every chosen row and then every rejected row (TRL's
// concatenated_forward); only completion tokens enter a sequence's log-prob.
import { compile, fromHost, intsFromHost, release, toHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";
import { dpoLosses, dpoUsesAverageLogps } from "../algorithms/dpo.ts";
import { averageSequenceLogps, sequenceLogps } from "../algorithms/sequence.ts";
import type { Architecture } from "../models/architecture.ts";
import { fullBatch, nextTokenHidden, nextTokenLogprobs, nextTokenTargets } from "../models/forward.ts";
import type { Params } from "../models/types.ts";
import { ConfigError, type DPOConfig } from "./config.ts";
import { fitDpoExample, type DpoExample } from "../data/dpo-data.ts";
import { bucketLength } from "./reward.ts";
import type { HeadLoss } from "./step.ts";
import { inferencePassItems, largerOf, modelShape, plan, trainPassItems, weightItems, type MemoryItem, type MemoryPlan } from "./memory-plan.ts";
import type { DeviceBatch, TrainTask } from "./trainer.ts";

/** A pair with the reference model's sequence log-probs of its completions. */
export interface DpoPair extends DpoExample {
  refChosen: number;
  refRejected: number;
}

export interface PairSequences {
  inputIds: Array; // [2B, T] int32: the B chosen rows, then the B rejected rows, right-padded
  positionIds: Array; // [2B, T] int32
  attentionMask: Array; // [2B, T] float32, 1 for real tokens
  completionMask: Array; // [2B, T] float32, 1 for completion tokens
}

export interface DpoBatch extends PairSequences {
  refChosen: Array; // [B]
  refRejected: Array; // [B]
}

/** The 2B rows of a batch of pairs, right-padded to a bucketed length of at most maxLength. */
export function pairSequences(examples: readonly DpoExample[], maxLength: number, padId: number): { sequences: PairSequences; tokens: number } {
  const rows = [...examples.map((e) => ({ prompt: e.prompt, completion: e.chosen })), ...examples.map((e) => ({ prompt: e.prompt, completion: e.rejected }))];
  const longest = Math.max(...rows.map((r) => r.prompt.length + r.completion.length));
  if (longest > maxLength) throw new Error(`pairSequences: a row has ${longest} tokens, more than max_length ${maxLength} (fit the pairs first)`);
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
 * Sequence log-probs per row [2B] from next-token log-probs [2B, T-1]: the sum over completion
 * tokens (prompt and padding masked), or with `average` the mean (what TRL feeds IPO). A
 * completion token at position 0 has nothing predicting it and is skipped.
 */
function completionSums(logp: Array, completionMask: Array, average: boolean): Array {
  const [n, t] = completionMask.shape as [number, number];
  const mask = completionMask.slice([], [1, t]).reshape([n, t - 1]);
  return average ? averageSequenceLogps(logp, mask) : sequenceLogps(logp, mask);
}

/** log π(completion | prompt) per row [2B] (see completionSums), for scoring without gradients. */
export function completionLogps(arch: Architecture, params: Params, s: PairSequences, average: boolean): Array {
  const logp = nextTokenLogprobs(arch, params, fullBatch(s.inputIds, s.positionIds, s.attentionMask)); // [2B, T-1]: column i scores token i+1
  return completionSums(logp, s.completionMask, average);
}

/** The config's DPO loss over a batch, with TRL's metrics (rewards/*, logps/*). */
export function dpoLoss(arch: Architecture, config: DPOConfig): HeadLoss<DpoBatch, Record<string, never>> {
  const loss = dpoLosses[config.loss_type];
  const average = dpoUsesAverageLogps(config.loss_type);
  return {
    headWeight: arch.lmHeadName,
    temperatures: [1],
    body: (params, b) => ({ hidden: [nextTokenHidden(arch, params, fullBatch(b.inputIds, b.positionIds, b.attentionMask))], extra: {} }),
    targets: (b) => [nextTokenTargets(b.inputIds)],
    loss: ([tokenLogps], _extra, b) => {
      const [n, t] = b.inputIds.shape as [number, number];
      const logps = completionSums(tokenLogps!.reshape([n, t - 1]), b.completionMask, average); // [2B]
      const pairs = b.refChosen.shape[0]!;
      return loss({ policyChosen: logps.ref.slice([0, pairs]), policyRejected: logps.slice([pairs, 2 * pairs]), refChosen: b.refChosen, refRejected: b.refRejected }, config);
    },
  };
}

/** Longest sequence a batch row may have: max_length, at most the model's context. */
export function dpoMaxLength(config: Pick<DPOConfig, "max_length">, arch: Architecture): number {
  return Math.min(config.max_length ?? Infinity, arch.maxPositions);
}

/** Pairs cut to the config's lengths (see fitDpoExample), and how many were cut. */
export function fitDpoExamples(examples: readonly DpoExample[], config: DPOConfig, arch: Architecture): { examples: DpoExample[]; truncated: number } {
  const limits = { max_length: dpoMaxLength(config, arch), max_prompt_length: config.max_prompt_length, max_completion_length: config.max_completion_length };
  const fitted = examples.map((e) => fitDpoExample(e, limits));
  return { examples: fitted.map((f) => f.example), truncated: fitted.filter((f) => f.truncated).length };
}

/**
 * The reference model's sequence log-probs of every pair, computed once (no gradient), summed or
 * averaged as the loss type wants. Pairs go through in batches of similar length. `params` are borrowed.
 */
export async function withReferenceLogps(
  arch: Architecture,
  params: Params,
  examples: readonly DpoExample[],
  config: DPOConfig,
  padId: number,
  onProgress?: (done: number, total: number) => void,
): Promise<DpoPair[]> {
  const average = dpoUsesAverageLogps(config.loss_type);
  const forward = compile((p: Params, s: PairSequences) => completionLogps(arch, p, s, average));
  const maxLength = dpoMaxLength(config, arch);
  const size = config.per_device_eval_batch_size;
  const rowLength = (e: DpoExample) => e.prompt.length + Math.max(e.chosen.length, e.rejected.length);
  const order = examples.map((_, i) => i).sort((a, b) => rowLength(examples[a]!) - rowLength(examples[b]!));
  const out = new Array<DpoPair>(examples.length);
  try {
    for (let from = 0; from < order.length; from += size) {
      const idx = order.slice(from, from + size);
      const { sequences } = pairSequences(idx.map((i) => examples[i]!), maxLength, padId);
      const logps = await toHost(forward(params, sequences)); // [2B]
      release(sequences);
      idx.forEach((i, j) => (out[i] = { ...examples[i]!, refChosen: logps[j]!, refRejected: logps[idx.length + j]! }));
      onProgress?.(from + idx.length, examples.length);
    }
  } finally {
    forward.dispose();
  }
  return out;
}

/** The device batch of pairs with their cached reference log-probs; its weight is the pair count. */
export function dpoBatch(pairs: readonly DpoPair[], maxLength: number, padId: number): DeviceBatch<DpoBatch> {
  const { sequences, tokens } = pairSequences(pairs, maxLength, padId);
  const batch = { ...sequences, refChosen: fromHost(pairs.map((p) => p.refChosen), [pairs.length]), refRejected: fromHost(pairs.map((p) => p.refRejected), [pairs.length]) };
  return { batch, tokens, weight: pairs.length };
}

/** What the field specs cannot say: beta > 0 (IPO divides by it), robust's label_smoothing < ½. */
export function checkDPOConfig(config: DPOConfig): void {
  if (!(config.beta > 0)) throw new ConfigError(`beta must be greater than 0, got ${config.beta}`);
  if (config.loss_type === "robust" && config.label_smoothing >= 0.5) throw new ConfigError(`loss_type robust needs label_smoothing below 0.5, got ${config.label_smoothing}`);
}

/** The shared trainer's task for DPO over pairs that already carry their reference log-probs. */
export function dpoTask(
  arch: Architecture,
  config: DPOConfig,
  data: { train: DpoPair[]; eval: DpoPair[] },
  save: Pick<TrainTask<DpoPair, DpoBatch>, "modelConfig" | "tokenizer" | "generationConfig">,
  padId: number,
): TrainTask<DpoPair, DpoBatch> {
  checkDPOConfig(config);
  const maxLength = dpoMaxLength(config, arch);
  return {
    kind: "dpo",
    config,
    ...save,
    train: data.train,
    eval: data.eval,
    fingerprintOf: (p) => [...p.prompt, -1, ...p.chosen, -2, ...p.rejected],
    makeBatch: (pairs) => dpoBatch(pairs, maxLength, padId),
    loss: dpoLoss(arch, config),
  };
}

/**
 * Engine memory of a DPO run: the policy trained with AdamW on micro-batches of 2B rows (chosen and
 * rejected) of at most `length` tokens; before training, the reference's log-probs (the starting
 * model's, or a separate `reference` model's weights alongside).
 */
export function dpoMemoryPlan(arch: Architecture, config: Pick<DPOConfig, "per_device_train_batch_size" | "per_device_eval_batch_size">, length: number, reference?: Architecture): MemoryPlan {
  const shape = modelShape(arch);
  const rows = 2 * Math.max(1, config.per_device_train_batch_size);
  const train = trainPassItems("policy", shape, { rows, length, headTokens: rows * (length - 1) });
  const evalRows = 2 * config.per_device_eval_batch_size;
  const scoring: MemoryItem[] = [
    ...(reference ? weightItems("reference", modelShape(reference), false) : []),
    ...inferencePassItems(reference ? "reference" : "policy", reference ? modelShape(reference) : shape, { rows: evalRows, length, headTokens: evalRows * (length - 1) }),
  ];
  return plan([...weightItems("policy", shape, true), ...largerOf(train, scoring)]);
}

/** The padded row length of a set of pairs (prompt + the longer completion, bucketed). */
export function dpoRowLength(examples: readonly DpoExample[], maxLength: number): number {
  const longest = Math.max(1, ...examples.map((e) => e.prompt.length + Math.max(e.chosen.length, e.rejected.length)));
  return bucketLength(longest, maxLength);
}
