// Supervised fine-tuning (TRL's SFTTrainer): next-token loss on the completion tokens of each
// demonstration (the prompt masked), optional packing of several examples per row, truncation to
// max_length. The loop itself is the shared trainer's.
import type { SftExample } from "../data/datasets.ts";
import { fromHost, intsFromHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";
import type { Architecture } from "../models/architecture.ts";
import { MASK_VALUE } from "../models/layers.ts";
import type { Params } from "../models/types.ts";
import type { SFTConfig } from "./config.ts";
import type { HeadLoss } from "./step.ts";
import { inferencePassItems, largerOf, modelShape, plan, trainPassItems, weightItems, type MemoryPlan } from "./memory-plan.ts";
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

/** Rows are padded to a multiple of this (or to max_length when packing), so few shapes compile. */
export const LENGTH_BUCKET = 32;

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

/** The device batch for rows, right-padded to `length`. Padding attends only to itself and is never a target. */
export function sftBatch(rows: readonly SftRow[], length: number, padId = 0): DeviceBatch<SftBatch> {
  const b = rows.length;
  const ids = new Int32Array(b * length).fill(padId);
  const pos = new Int32Array(b * length);
  const loss = new Float32Array(b * length);
  const bias = new Float32Array(b * length * length).fill(MASK_VALUE);
  let tokens = 0;
  let targets = 0;
  rows.forEach((row, r) => {
    if (rowLength(row) > length) throw new Error(`sftBatch: row ${r} has ${rowLength(row)} tokens, more than ${length}`);
    let start = 0;
    for (const seg of row.segments) {
      for (let t = 0; t < seg.ids.length; t++) {
        const q = start + t;
        ids[r * length + q] = seg.ids[t]!;
        pos[r * length + q] = t;
        loss[r * length + q] = seg.lossMask[t]!;
        targets += seg.lossMask[t]!;
        const base = (r * length + q) * length;
        for (let k = start; k <= q; k++) bias[base + k] = 0;
      }
      start += seg.ids.length;
    }
    for (let q = start; q < length; q++) bias[(r * length + q) * length + q] = 0;
    tokens += start;
  });
  return {
    batch: { inputIds: intsFromHost(ids, [b, length]), positionIds: intsFromHost(pos, [b, length]), bias: fromHost(bias, [b, 1, 1, length, length]), lossMask: fromHost(loss, [b, length]) },
    tokens,
    weight: targets,
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
  if (config.packing) return config.max_length;
  const longest = Math.max(...rows.map(rowLength));
  return Math.min(config.max_length, Math.ceil(longest / LENGTH_BUCKET) * LENGTH_BUCKET);
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

/** Engine memory of an SFT run: the model trained with AdamW, one micro-batch of `length`-token rows. */
export function sftMemoryPlan(arch: Architecture, config: Pick<SFTConfig, "per_device_train_batch_size" | "per_device_eval_batch_size">, length: number): MemoryPlan {
  const shape = modelShape(arch);
  const rows = Math.max(config.per_device_train_batch_size, 1);
  const train = trainPassItems("model", shape, { rows, length, headTokens: rows * (length - 1) });
  const evalRows = config.per_device_eval_batch_size;
  const evaluate = inferencePassItems("model", shape, { rows: evalRows, length, headTokens: evalRows * (length - 1) });
  return plan([...weightItems("model", shape, true), ...largerOf(train, evaluate)]);
}

/** The advice an SFT run's refusal gives. */
export function sftMemoryAdvice(config: Pick<SFTConfig, "per_device_train_batch_size" | "gradient_accumulation_steps" | "max_length">): string {
  return `lower per_device_train_batch_size (now ${config.per_device_train_batch_size}) or max_length (now ${config.max_length}), raising gradient_accumulation_steps (now ${config.gradient_accumulation_steps}) to keep the effective batch`;
}
