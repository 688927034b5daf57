// A row's logits depend on its own sequence only: not on the cache's slot count, not on the other
// rows, not on the row moving when the batch is rearranged (all bitwise), and across the engine's
// matmul kernels for fewer and more than 3 rows only by float32 rounding.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadModel } from "../models/load.ts";
import { RowBatch } from "./row-batch.ts";

const model = await loadModel("../shared/data/llama2c/stories260K.bin");
const V = model.arch.vocabSize;
const prompt = [1, 403, 407, 261];
const fed = Array.from({ length: 8 }, (_, i) => 100 + 7 * i);

/**
 * Logits of `prompt` then each token of `fed`, with the sequence in row `row` of `rows` rows whose
 * other rows hold other prompts reaching `neighbourReach` tokens; `moveAt` rearranges the batch
 * mid-way into 4 rows, the sequence moving to row 0.
 */
async function trace(rows: number, row: number, neighbourReach: number, moveAt = -1): Promise<Float32Array[]> {
  const batch = new RowBatch(model.arch, model.params, model.arch.maxPositions);
  batch.arrange(new Array(rows).fill(-1));
  for (let r = 0; r < rows; r++) if (r !== row) await batch.insert([1, 50 + r, 60 + r], [r], neighbourReach);
  const out = [(await batch.insert(prompt, [row], 30)).slice()];
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

test("a row's logits do not depend on the slot count, its neighbours or its moving (bitwise)", async () => {
  const alone = await trace(1, 0, 0);
  assert.equal(maxDiff(await trace(2, 1, 500), alone), 0, "a neighbour that widens the cache to 512 slots");
  const wide = await trace(8, 5, 60);
  assert.equal(maxDiff(await trace(4, 2, 500), wide), 0, "4 rows against 8");
  assert.equal(maxDiff(await trace(8, 6, 400, 4), wide), 0, "moved from row 6 of 8 to row 0 of 4 mid-way");
});

test("across batch sizes the engine's kernels differ only by float32 rounding", async () => {
  const d = maxDiff(await trace(1, 0, 0), await trace(8, 3, 100));
  assert.ok(d < 1e-4, `max |Δlogit| ${d}`);
});
