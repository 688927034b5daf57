// A row's logits depend on its own sequence only: not on the cache's slot count, not on the other
// rows, not on the row moving when the batch is rearranged, not on reading its prompt together with
// others (all bitwise), and across the engine's matmul kernels for fewer and more than 3 rows only
// by float32 rounding. Greedy decoding through
// it is Generator's on Qwen2 and on GPT-2 (whose Conv1D weights it transposes once).
import assert from "node:assert/strict";
import { test } from "node:test";
import { release } from "../engine/arrays.ts";
import { architectureFor } from "../models/architecture.ts";
import { parseConfig } from "../models/config.ts";
import { loadModel } from "../models/load.ts";
import { initParams } from "../models/params.ts";
import { Generator } from "./generate.ts";
import { RowBatch } from "./row-batch.ts";
import { argmax } from "./sampling.ts";

const model = await loadModel("../shared/data/llama2c/stories260K.bin");
const V = model.arch.vocabSize;
const prompt = [1, 403, 407, 261];
const fed = Array.from({ length: 8 }, (_, i) => 100 + 7 * i);

/**
 * Logits of `prompt` then each token of `fed`, with the sequence in row `row` of `rows` rows whose
 * other rows hold other prompts reaching `neighbourReach` tokens; `moveAt` rearranges the batch
 * mid-way into 4 rows, the sequence moving to row 0; `readTogether` reads all the prompts in one
 * prefill pass (else the neighbours' first, then the sequence's alone).
 */
async function trace(rows: number, row: number, neighbourReach: number, moveAt = -1, readTogether = false): Promise<Float32Array[]> {
  const batch = new RowBatch(model.arch, model.params, model.arch.maxPositions);
  batch.arrange(new Array(rows).fill(-1));
  const neighbours = Array.from({ length: rows }, (_, r) => ({ ids: [1, 50 + r, 60 + r], rows: [r], reach: neighbourReach })).filter((_, r) => r !== row);
  const own = { ids: prompt, rows: [row], reach: 30 };
  const read = readTogether ? await batch.insert([...neighbours, own]) : [...(await batch.insert(neighbours)), ...(await batch.insert([own]))];
  const out = [read.at(-1)!];
  let at = row;
  for (let i = 0; i < fed.length; i++) {
    if (i === moveAt) {
      batch.arrange([at, ...[0, 1, 2, 3, 4, 5, 6, 7].filter((r) => r !== at && r < batch.rows).slice(0, 3)]);
      at = 0;
    }
    const tokens = new Int32Array(batch.rows).fill(9);
    tokens[at] = fed[i]!;
    const logits = await batch.step(tokens, new Array(batch.rows).fill(true));
    out.push(logits.slice(at * V, (at + 1) * V));
  }
  batch.dispose();
  return out;
}

const maxDiff = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((x, i) => Math.max(...x.map((v, j) => Math.abs(v - b[i]![j]!)))));

test("a row's logits do not depend on the slot count, its neighbours, its moving or a shared prefill (bitwise)", async () => {
  const alone = await trace(1, 0, 0);
  assert.equal(maxDiff(await trace(2, 1, 500), alone), 0, "a neighbour that widens the cache to 512 slots");
  const wide = await trace(8, 5, 60);
  assert.equal(maxDiff(await trace(4, 2, 500), wide), 0, "4 rows against 8");
  assert.equal(maxDiff(await trace(8, 6, 400, 4), wide), 0, "moved from row 6 of 8 to row 0 of 4 mid-way");
  assert.equal(maxDiff(await trace(8, 5, 60, -1, true), wide), 0, "its prompt read in one pass with seven others");
});

test("across batch sizes the engine's kernels differ only by float32 rounding", async () => {
  const d = maxDiff(await trace(1, 0, 0), await trace(8, 3, 100));
  assert.ok(d < 1e-4, `max |Δlogit| ${d}`);
});

const tinyConfigs = {
  qwen2: { model_type: "qwen2", vocab_size: 48, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64 },
  "gpt2 (Conv1D, transposed for decoding)": { model_type: "gpt2", vocab_size: 48, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 64 },
};

for (const [label, json] of Object.entries(tinyConfigs)) {
  test(`${label}: greedy decoding through the row batch is Generator's`, async () => {
    const config = parseConfig(json, label);
    const arch = architectureFor(config);
    const params = initParams(arch, 3);
    const promptIds = [1, 7, 30, 2, 11];
    const [expected] = await new Generator(arch).generate(params, [promptIds], { maxNewTokens: 10, temperature: 0 });
    const batch = new RowBatch(arch, params, 64);
    batch.arrange([-1, -1]);
    await batch.insert([{ ids: [1, 3], rows: [0], reach: 20 }]); // a neighbour
    let logits = (await batch.insert([{ ids: promptIds, rows: [1], reach: promptIds.length + 10 }]))[0]!;
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) {
      ids.push(argmax(logits));
      logits = (await batch.step(Int32Array.from([5, ids[i]!]), [true, true])).subarray(arch.vocabSize, 2 * arch.vocabSize);
    }
    batch.dispose();
    release(params);
    assert.deepEqual(ids, expected!.completionIds);
  });
}
