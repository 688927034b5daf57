// Supervised fine-tuning (TRL's SFTTrainer): next-token loss on the completion tokens of each
// demonstration (the prompt masked), optional packing of several examples per row, truncation to
// max_length. The loop itself is the shared trainer's.
import type { SftExample } from "../data/datasets.ts";
import { fromHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";
import type { Architecture } from "../models/architecture.ts";
import { MASK_VALUE } from "../models/layers.ts";
import { bucketLength, floatGrid, intGrid } from "./batching.ts";
import type { SFTConfig } from "./config.ts";
import type { HeadLoss } from "./step.ts";
import { inferencePassItems, largerOf, modelShape, plan, trainedModelItems, trainPassItems, type AdapterShape, type MemoryPlan } from "./memory-plan.ts";
import { nextTokenLoss } from "./lm-loss.ts";
import type { DeviceBatch, TrainTask } from "./trainer.ts";

/** One training row: one example, or several packed ones (each attends only to itself). */
export interface SftRow {
  segments: { ids: number[]; lossMask: number[] }[];
}

export interface SftBatch {
  inputIds: Array; // [B, L] int32
  positionIds: Array; // [B, L] int32, restarting at 0 in every packed segment
  bias: Array; // [B, 1, 1, L, L] additive attention bias: causal within each segment
  lossMask: Array; // [B, L] float32, 1 where the token is a target
}

/**
 * Training rows from examples: truncated to max_length, loss mask = completion mask (or every
 * token but the first when completion_only_loss is off), packed when asked. A segment's first
 * token is never a target: nothing in the segment predicts it.
 */
export function sftRows(examples: readonly SftExample[], config: Pick<SFTConfig, "max_length" | "packing" | "completion_only_loss">): SftRow[] {
  const segments = examples.map((e, i) => {
    if (e.ids.length !== e.completionMask.length) throw new Error(`SFT example ${i}: ${e.ids.length} ids but ${e.completionMask.length} mask values`);
    const ids = e.ids.slice(0, config.max_length);
    const lossMask = ids.map((_, t) => (t === 0 ? 0 : config.completion_only_loss ? (e.completionMask[t] ? 1 : 0) : 1));
    return { ids, lossMask };
  });
  const useful = segments.filter((s) => s.lossMask.some((m) => m > 0));
  return config.packing ? packBestFit(useful, config.max_length) : useful.map((s) => ({ segments: [s] }));
}

/** Best-fit decreasing (TRL's "bfd" packing): longest first, each into the fullest row it fits. */
function packBestFit(segments: SftRow["segments"], capacity: number): SftRow[] {
  const rows: { row: SftRow; free: number }[] = [];
  const byLength = segments.map((s, i) => ({ s, i })).sort((a, b) => b.s.ids.length - a.s.ids.length || a.i - b.i);
  for (const { s } of byLength) {
    let best: (typeof rows)[number] | null = null;
    for (const r of rows) if (r.free >= s.ids.length && (best === null || r.free < best.free)) best = r;
    if (best) {
      best.row.segments.push(s);
      best.free -= s.ids.length;
    } else rows.push({ row: { segments: [s] }, free: capacity - s.ids.length });
  }
  return rows.map((r) => r.row);
}

export function rowLength(row: SftRow): number {
  return row.segments.reduce((n, s) => n + s.ids.length, 0);
}

/**
 * The device batch for rows, right-padded to `length`: positions restart in every packed segment,
 * and the attention bias keeps each segment (and each padding token) to itself. Padding is never a target.
 */
export function sftBatch(rows: readonly SftRow[], length: number, padId = 0): DeviceBatch<SftBatch> {
  const inputIds = intGrid(rows.map((row) => row.segments.flatMap((s) => s.ids)), length, padId); // refuses a row longer than length
  const bias = new Float32Array(rows.length * length * length).fill(MASK_VALUE);
  rows.forEach((row, r) => {
    let start = 0;
    for (const seg of row.segments) {
      for (let q = start; q < start + seg.ids.length; q++) bias.fill(0, (r * length + q) * length + start, (r * length + q) * length + q + 1);
      start += seg.ids.length;
    }
    for (let q = start; q < length; q++) bias[(r * length + q) * length + q] = 0;
  });
  const lossMasks = rows.map((row) => row.segments.flatMap((s) => s.lossMask));
  return {
    batch: {
      inputIds,
      positionIds: intGrid(rows.map((row) => row.segments.flatMap((s) => s.ids.map((_, t) => t))), length),
      bias: fromHost(bias, [rows.length, 1, 1, length, length]),
      lossMask: floatGrid(lossMasks, length),
    },
    tokens: rows.reduce((n, row) => n + rowLength(row), 0),
    weight: lossMasks.flat().reduce((a, b) => a + b, 0),
  };
}

/** Mean cross-entropy over target tokens (prompt and padding weigh nothing). */
export function sftLoss(arch: Architecture): HeadLoss<SftBatch, Record<string, never>> {
  return nextTokenLoss<SftBatch>(arch, {
    forward: (b) => ({ inputIds: b.inputIds, positionIds: b.positionIds, bias: b.bias }),
    inputIds: (b) => b.inputIds,
    lossMask: (b) => b.lossMask,
  });
}

/** Row length for a batch: max_length when packing (every row is nearly full), else the next bucket. */
export function paddedLength(rows: readonly SftRow[], config: Pick<SFTConfig, "max_length" | "packing">): number {
  return config.packing ? config.max_length : bucketLength(Math.max(...rows.map(rowLength)), config.max_length);
}

/** The shared trainer's task for SFT over prepared rows. */
export function sftTask(
  arch: Architecture,
  config: SFTConfig,
  data: { train: SftRow[]; eval: SftRow[] },
  save: Pick<TrainTask<SftRow, SftBatch>, "modelConfig" | "tokenizer" | "generationConfig">,
  padId = 0,
): TrainTask<SftRow, SftBatch> {
  return {
    kind: "sft",
    config,
    ...save,
    train: data.train,
    eval: data.eval,
    fingerprintOf: (row) => row.segments.flatMap((s) => [...s.ids, -1, ...s.lossMask, -2]),
    makeBatch: (rows) => sftBatch(rows, paddedLength(rows, config), padId),
    loss: sftLoss(arch),
  };
}

/** Engine memory of an SFT run: the model (or a LoRA adapter on it) trained with AdamW, one micro-batch of `length`-token rows. */
export function sftMemoryPlan(
  arch: Architecture,
  config: Pick<SFTConfig, "per_device_train_batch_size" | "per_device_eval_batch_size">,
  length: number,
  adapter?: AdapterShape,
  headBudget?: number,
): MemoryPlan {
  const shape = modelShape(arch);
  const rows = Math.max(config.per_device_train_batch_size, 1);
  const train = trainPassItems("model", shape, { rows, length, headTokens: rows * (length - 1) }, headBudget, adapter);
  const evalRows = config.per_device_eval_batch_size;
  const evaluate = inferencePassItems("model", shape, { rows: evalRows, length, headTokens: evalRows * (length - 1) }, headBudget);
  return plan([...trainedModelItems("model", shape, adapter), ...largerOf(train, evaluate)], adapter !== undefined);
}
