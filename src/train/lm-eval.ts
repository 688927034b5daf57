// A model's language-modelling loss on held-out text: mean negative log-likelihood per target
// token (every token but each row's first). `rlhf eval --lm-data` reports it for the policy and the
// reference side by side, so what RLHF cost the model as a language model (the "alignment tax")
// is one number beside the reward it gained.
import { compile, release, toHost } from "../engine/arrays.ts";
import type { Architecture } from "../models/architecture.ts";
import { maskedLmLoss } from "../models/forward.ts";
import type { Params } from "../models/types.ts";
import { bucketLength } from "./batching.ts";
import { rowLength, sftBatch, type SftBatch, type SftRow } from "./sft.ts";

/** Mean NLL per target token over all rows (each batch's mean weighed by its target tokens), and the number of target tokens. */
export async function languageModelLoss(arch: Architecture, params: Params, rows: readonly SftRow[], options: { padId: number; batchSize: number; maxLength: number }): Promise<{ loss: number; tokens: number }> {
  const forward = compile((p: Params, b: SftBatch) => maskedLmLoss(arch, p, { inputIds: b.inputIds.ref, positionIds: b.positionIds.ref, bias: b.bias.ref }, b.lossMask.ref));
  // Sorted by length, so each batch pads little and few shapes are compiled.
  const sorted = [...rows].sort((a, b) => rowLength(a) - rowLength(b));
  let total = 0;
  let tokens = 0;
  try {
    for (let from = 0; from < sorted.length; from += options.batchSize) {
      const chunk = sorted.slice(from, from + options.batchSize);
      const { batch, weight } = sftBatch(chunk, bucketLength(Math.max(...chunk.map(rowLength)), options.maxLength), options.padId);
      const [mean] = await toHost(forward(params, batch));
      release(batch);
      total += mean! * weight;
      tokens += weight;
    }
  } finally {
    forward.dispose();
  }
  return { loss: tokens > 0 ? total / tokens : NaN, tokens };
}
