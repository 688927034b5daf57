// The causal-LM training loss as a TrainStep loss: batches of token ids with a loss mask.
import type { Array } from "../engine/runtime.ts";
import type { Architecture } from "../models/architecture.ts";
import { fullBatch, maskedNll, nextTokenHidden, nextTokenTargets, withDropoutKey } from "../models/forward.ts";
import type { ForwardBatch, Params } from "../models/types.ts";
import { floatGrid, padRows } from "./batching.ts";
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
    body: (params: Params, b: B, rng?: Array) => ({ hidden: [nextTokenHidden(arch, params, withDropoutKey(parts.forward(b), rng))], extra: {} }),
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
  return { ...padRows(rows, length, padId), lossMask: floatGrid(lossMasks.map((m, r) => m.slice(0, rows[r]!.length)), length) };
}
