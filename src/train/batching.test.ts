// The one row layout (batching.ts) by hand: rows left-aligned and right-padded, positions from 0,
// masks 0 on padding, bucketed lengths; the reward model's last-token one-hot and the preference
// trainers' row order (every example's first completion, then every example's second) on top of it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { toHost } from "../engine/arrays.ts";
import { initEngine, type Array } from "../engine/runtime.ts";
import { bucketLength, completionSequences, padRows } from "./batching.ts";
import { preferenceSequences } from "./preference.ts";
import { scoreBatch } from "./reward.ts";

const rowsOf = async (a: Array) => {
  const [n, t] = a.shape as [number, number];
  const flat = Array.from(await toHost(a));
  return Array.from({ length: n }, (_, r) => flat.slice(r * t, (r + 1) * t));
};

test("bucketed lengths: the next multiple of 32, at most max_length", () => {
  assert.deepEqual([bucketLength(1, 64), bucketLength(32, 64), bucketLength(33, 64), bucketLength(33, 40), bucketLength(70, 64)], [32, 32, 64, 40, 64]);
});

test("padRows: ids then padId, positions from 0, attention 1 on real tokens; a row longer than the length is refused", async () => {
  await initEngine();
  const b = padRows([[5, 6, 7], [8]], 4, 9);
  assert.deepEqual(await rowsOf(b.inputIds), [[5, 6, 7, 9], [8, 9, 9, 9]]);
  assert.deepEqual(await rowsOf(b.positionIds), [[0, 1, 2, 0], [0, 0, 0, 0]]);
  assert.deepEqual(await rowsOf(b.attentionMask), [[1, 1, 1, 0], [1, 0, 0, 0]]);
  assert.throws(() => padRows([[1, 2, 3]], 2, 0), /3 tokens, more than its padded length 2/);
});

test("completion rows: prompt ++ completion, completion mask, real-token count, bucketed length; scoreBatch marks each row's last token", async () => {
  await initEngine();
  const { sequences, tokens } = completionSequences([{ prompt: [1, 2], completion: [3] }, { prompt: [1], completion: [4, 5, 6] }], 64, 0);
  assert.equal(tokens, 7);
  const ids = await rowsOf(sequences.inputIds);
  assert.equal(ids[0]!.length, 32);
  assert.deepEqual(ids.map((r) => r.slice(0, 5)), [[1, 2, 3, 0, 0], [1, 4, 5, 6, 0]]);
  assert.deepEqual((await rowsOf(sequences.completionMask)).map((r) => r.slice(0, 5)), [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0]]);
  assert.deepEqual((await rowsOf(sequences.attentionMask)).map((r) => r.reduce((a, b) => a + b, 0)), [3, 4]);
  assert.throws(() => completionSequences([{ prompt: [1, 2], completion: [3, 4] }], 3, 0), /4 tokens, more than max_length 3/);
  const score = scoreBatch([[4, 5, 6], [7]], 4, 0);
  assert.deepEqual(await rowsOf(score.lastToken), [[0, 0, 1, 0], [1, 0, 0, 0]]);
});

test("preference rows: every example's first completion, then every example's second; the examples of a batch must have as many", async () => {
  await initEngine();
  const pairs = [{ prompt: [1], chosen: [2], rejected: [3] }, { prompt: [4], chosen: [5], rejected: [6] }];
  const { sequences } = preferenceSequences(pairs, { completions: (e) => [e.chosen, e.rejected] }, 32, 0);
  assert.deepEqual((await rowsOf(sequences.inputIds)).map((r) => r.slice(0, 2)), [[1, 2], [4, 5], [1, 3], [4, 6]]);
  const uneven = [{ prompt: [1], completions: [[2]] }, { prompt: [1], completions: [[2], [3]] }];
  assert.throws(() => preferenceSequences(uneven, { completions: (e) => e.completions }, 32, 0), /different numbers of completions/);
});
