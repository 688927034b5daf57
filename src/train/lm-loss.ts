// The causal-LM training loss as a TrainStep loss: batches of token ids with a loss mask.
import type { Array } from "../engine/runtime.ts";
import { fromHost, intsFromHost } from "../engine/arrays.ts";
import type { Architecture } from "../models/architecture.ts";
import { fullBatch, maskedNll, nextTokenHidden, nextTokenTargets } from "../models/forward.ts";
import type { ForwardBatch, Params } from "../models/types.ts";
import type { HeadLoss } from "./step.ts";

export interface LmBatch {
  inputIds: Array; // [B, T] int32
  positionIds: Array; // [B, T] int32
  attentionMask: Array; // [B, T] float32
  lossMask: Array; // [B, T] float32: 1 where the token is a training target
}

/**
 * The mean next-token loss over a batch's target tokens, as a HeadLoss: `forward` gives the
 * model's input, `inputIds` its token ids [B, T] and `lossMask` [B, T] which tokens are targets.
 */
export function nextTokenLoss<B>(arch: Architecture, parts: { forward: (b: B) => ForwardBatch; inputIds: (b: B) => Array; lossMask: (b: B) => Array }): HeadLoss<B, Record<string, never>> {
  return {
    headWeight: arch.lmHeadName,
    temperatures: [1],
    body: (params: Params, b: B) => ({ hidden: [nextTokenHidden(arch, params, parts.forward(b))], extra: {} }),
    targets: (b: B) => [nextTokenTargets(parts.inputIds(b))],
    loss: ([logprobs], _extra, b: B) => {
      const mask = parts.lossMask(b);
      const [rows, t] = mask.shape as [number, number];
      return { loss: maskedNll(logprobs!.reshape([rows, t - 1]), mask), metrics: {} };
    },
  };
}

export function lmLoss(arch: Architecture): HeadLoss<LmBatch, Record<string, never>> {
  return nextTokenLoss<LmBatch>(arch, {
    forward: (b) => fullBatch(b.inputIds, b.positionIds, b.attentionMask),
    inputIds: (b) => b.inputIds,
    lossMask: (b) => b.lossMask,
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
