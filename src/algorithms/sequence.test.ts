import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, type Array } from "../engine/runtime.ts";
import { averageSequenceLogps, maskedMean, maskedMeanHost, maskedVarHost, maskedWhiten, sequenceLogps } from "./sequence.ts";
import { allClose, arr, close, runArray } from "./test-helpers.ts";

const logps = [
  [-1, -2, -3, -40],
  [-0.5, -9, -9, -9],
];
const mask = [
  [1, 1, 1, 0],
  [1, 0, 0, 0],
];

test("sequence log-probs: sums and means over the mask", async () => {
  await initEngine();
  allClose(await runArray(sequenceLogps, arr(logps), arr(mask)), [-6, -0.5]); // −1−2−3; −0.5
  allClose(await runArray(averageSequenceLogps, arr(logps), arr(mask)), [-2, -0.5]); // −6/3; −0.5/1
  // all tokens: (−6 − 0.5) / 4 valid = −1.625
  allClose(await runArray((x: Array, m: Array) => maskedMean(x, m), arr(logps), arr(mask)), [-1.625]);
  // an empty row averages to 0 instead of NaN
  allClose(await runArray((x: Array, m: Array) => maskedMean(x, m, -1), arr([[3, 4]]), arr([[0, 0]])), [0]);
});

test("host masked mean, unbiased variance and whitening", () => {
  const values = [[2, 4, 6, 99]];
  const m = [[1, 1, 1, 0]];
  close(maskedMeanHost(values, m), 4);
  close(maskedVarHost(values, m), 4); // ((−2)² + 0 + 2²) / (3 − 1)
  close(maskedVarHost(values, m, false), 8 / 3);
  // (x − 4) / √(4 + 1e-8): [−1, 0, 1], padding 0
  allClose(maskedWhiten(values, m)[0]!, [-1, 0, 1, 0]);
  allClose(maskedWhiten(values, m, false)[0]!, [3, 4, 5, 0]); // mean added back
  assert.throws(() => maskedVarHost([[1, 2]], [[1, 0]]), /at least two/);
  assert.throws(() => maskedMeanHost([[1]], [[0]]), /empty/);
});
