// The causal-LM training loss as a TrainStep loss: batches of token ids with a loss mask.
import type { Array } from "../engine/runtime.ts";
import { fromHost, intsFromHost } from "../engine/arrays.ts";
import type { Architecture } from "../models/architecture.ts";
import { fullBatch, maskedLmLoss } from "../models/forward.ts";
import type { Params } from "../models/types.ts";
import type { LossFn } from "./step.ts";

export interface LmBatch {
  inputIds: Array; // [B, T] int32
  positionIds: Array; // [B, T] int32
  attentionMask: Array; // [B, T] float32
  lossMask: Array; // [B, T] float32: 1 where the token is a training target
}

export function lmLoss(arch: Architecture): LossFn<LmBatch> {
  return (params: Params, b: LmBatch) => ({
    loss: maskedLmLoss(arch, params, fullBatch(b.inputIds, b.positionIds, b.attentionMask), b.lossMask),
    metrics: {},
  });
}

/**
 * Right-padded device batch from token rows and per-token loss masks (1 = target). Positions count
 * real tokens from 0; padding is masked out of attention and loss.
 */
export function lmBatchFromRows(rows: number[][], lossMasks: number[][], length: number, padId = 0): LmBatch {
  const b = rows.length;
  const ids = new Int32Array(b * length).fill(padId);
  const pos = new Int32Array(b * length);
  const attn = new Float32Array(b * length);
  const loss = new Float32Array(b * length);
  rows.forEach((row, r) => {
    if (row.length > length) throw new Error(`lmBatchFromRows: row ${r} has ${row.length} tokens, more than ${length}`);
    for (let t = 0; t < row.length; t++) {
      ids[r * length + t] = row[t]!;
      pos[r * length + t] = t;
      attn[r * length + t] = 1;
      loss[r * length + t] = lossMasks[r]![t]!;
    }
  });
  return {
    inputIds: intsFromHost(ids, [b, length]),
    positionIds: intsFromHost(pos, [b, length]),
    attentionMask: fromHost(attn, [b, length]),
    lossMask: fromHost(loss, [b, length]),
  };
}
