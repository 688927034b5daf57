// The ensemble reductions against numpy (float64): s = [[1, -2, 0.5], [3, -1, 0.5], [2.5, 0, 0.5]]
// (3 members × 3 completions); s.mean(0), s.min(0), s.std(0) and s.mean(0) - 0.7 * s.var(0).
import { test } from "node:test";
import assert from "node:assert/strict";
import { reduceEnsemble } from "./ensemble-reward.ts";

const scores = [
  [1, -2, 0.5],
  [3, -1, 0.5],
  [2.5, 0, 0.5],
];
const STD = [0.8498365855987975, 0.816496580927726, 0];

function assertClose(actual: number[], expected: number[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((x, i) => assert.ok(Math.abs(x - expected[i]!) < 1e-9, `[${i}] ${x} vs ${expected[i]}`));
}

test("mean, min and UWO reductions and the members' std match numpy", () => {
  const mean = reduceEnsemble(scores, { ensemble_reduce: "mean", uwo_lambda: 0.7 });
  assertClose(mean.rewards, [2.1666666666666665, -1, 0.5]);
  assertClose(mean.std, STD);
  assertClose(reduceEnsemble(scores, { ensemble_reduce: "min", uwo_lambda: 0.7 }).rewards, [1, -2, 0.5]);
  const uwo = reduceEnsemble(scores, { ensemble_reduce: "uwo", uwo_lambda: 0.7 });
  assertClose(uwo.rewards, [1.661111111111111, -1.4666666666666666, 0.5]);
  assertClose(uwo.std, STD);
});

test("members that agree leave the score alone under every reduction", () => {
  for (const reduce of ["mean", "min", "uwo"] as const) assertClose(reduceEnsemble([[0.3, -4], [0.3, -4]], { ensemble_reduce: reduce, uwo_lambda: 2 }).rewards, [0.3, -4]);
});

test("members scoring different numbers of completions are refused", () => {
  assert.throws(() => reduceEnsemble([[1, 2], [1]], { ensemble_reduce: "mean", uwo_lambda: 0 }), /every ensemble member/);
});
