// The two compiled passes of KV-cached decoding over a fixed-size cache, shared by batch generation
// (generate.ts) and the server's continuous batch (serve/batch.ts). jax-js's jit caches each by its
// input shapes, so one pair serves every batch size and prompt length.
import { np, type Array } from "../engine/runtime.ts";
import { compile } from "../engine/arrays.ts";
import type { Architecture } from "../models/architecture.ts";
import { attentionBias } from "../models/layers.ts";
import { lmLogits } from "../models/forward.ts";
import type { KvCache, Params } from "../models/types.ts";

export function decodingSteps(arch: Architecture) {
  const transposedWeights = arch.transposedForDecoding.length > 0;
  return {
    /**
     * The whole (left-padded) prompt at once: last-position logits [B, V] and a cache padded with
     * `padSlots` ([B, S - T, nKV, hd] zeros) to its full size S.
     */
    prefill: compile((params: Params, ids: Array, pos: Array, mask: Array, padSlots: Array) => {
      const [b, t] = ids.shape as [number, number];
      const batch = { inputIds: ids, positionIds: pos, bias: attentionBias(mask, t), inference: true, lastPositionOnly: true, transposedWeights };
      const { hidden, present } = arch.body(params, batch); // hidden: [B, 1, D]
      const logits = lmLogits(arch, params, hidden).reshape([b, arch.vocabSize]);
      const pad = (x: Array) => np.concatenate([x, padSlots.ref], 1);
      return { logits, cache: { keys: present.keys.map(pad), values: present.values.map(pad) } };
    }),
    /** One token per row ([B] ids and positions), its keys and values written at each row's `slotOneHot` [B, S]. */
    decode: compile((params: Params, cache: KvCache, ids: Array, pos: Array, keyMask: Array, slotOneHot: Array) => {
      const [b] = ids.shape as [number];
      const batch = { inputIds: ids, positionIds: pos, bias: attentionBias(keyMask, 1), inference: true, transposedWeights };
      const { hidden, present } = arch.body(params, batch, { ...cache, slotOneHot });
      const logits = lmLogits(arch, params, hidden).reshape([b, arch.vocabSize]);
      return { logits, cache: present };
    }),
    /** The weights in arch.transposedForDecoding, transposed (GPT-2's Conv1D layout), for the two passes above. */
    transpose: compile((weights: Array[]) => weights.map((w) => w.transpose())),
  };
}

export type DecodingSteps = ReturnType<typeof decodingSteps>;
