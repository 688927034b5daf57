import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, release, toHost, toNumber } from "../engine/arrays.ts";
import { expandRanking, rewardModelLoss, tieGroups } from "./reward-model.ts";
import { allClose, arr, close, runLoss } from "./test-helpers.ts";

// softplus(x) = ln(1 + eˣ) = −log σ(−x)
// softplus(−1) = 0.313262, softplus(1) = 1.313262, softplus(−0.5) = 0.474077

test("Bradley-Terry loss, accuracy and margin", async () => {
  await initEngine();
  // diffs r_c − r_r = [1, −1]: loss = (softplus(−1) + softplus(1)) / 2 = (0.313262 + 1.313262) / 2 = 0.813262
  const out = await runLoss((c: Array, r: Array) => rewardModelLoss(c, r), arr([2, 0]), arr([1, 1]));
  close(out.loss, 0.813262);
  close(out.metrics.accuracy!, 0.5);
  close(out.metrics.margin!, 0);
});

test("per-pair margin and reward centring", async () => {
  await initEngine();
  // margin [0.5, 0]: arguments [0.5, −1] → (softplus(−0.5) + softplus(1)) / 2 = (0.474077 + 1.313262) / 2 = 0.893670
  const withMargin = await runLoss((c: Array, r: Array, m: Array) => rewardModelLoss(c, r, { margin: m }), arr([2, 0]), arr([1, 1]), arr([0.5, 0]));
  close(withMargin.loss, 0.89367);
  close(withMargin.metrics.margin!, 0, 1e-6, "the margin metric ignores the margin input");
  // centring: (r_c + r_r)² = [9, 1], mean 5, · 0.01 = 0.05 → 0.813262 + 0.05 = 0.863262
  const centred = await runLoss((c: Array, r: Array) => rewardModelLoss(c, r, { centerRewardsCoefficient: 0.01 }), arr([2, 0]), arr([1, 1]));
  close(centred.loss, 0.863262);
});

test("a tied pair is not counted as accurate", async () => {
  await initEngine();
  const out = await runLoss((c: Array, r: Array) => rewardModelLoss(c, r), arr([1, 3]), arr([1, 2]));
  close(out.metrics.accuracy!, 0.5);
  close(out.loss, (Math.log(2) + Math.log1p(Math.exp(-1))) / 2); // (ln 2 + softplus(−1)) / 2
});

test("gradient w.r.t. the chosen rewards is −σ(−(r_c − r_r)) / B", async () => {
  await initEngine();
  const vg = compile(valueAndGrad((c: Array, r: Array) => rewardModelLoss(c, r).loss));
  const [chosen, rejected] = [arr([2, 0]), arr([1, 1])];
  const [loss, grad] = vg(chosen, rejected) as unknown as [Array, Array];
  close(await toNumber(loss), 0.813262);
  // σ(−1) = 0.268941, σ(1) = 0.731059; divided by B = 2
  allClose(await toHost(grad), [-0.134471, -0.365529]);
  release([chosen, rejected]);
  vg.dispose();
});

test("ranking expansion: groups best first, ties give no pair", () => {
  const pairs = expandRanking([[0], [2, 3], [1]]);
  assert.deepEqual(pairs, [
    { chosen: 0, rejected: 2 },
    { chosen: 0, rejected: 3 },
    { chosen: 0, rejected: 1 },
    { chosen: 2, rejected: 1 },
    { chosen: 3, rejected: 1 },
  ]);
  assert.equal(expandRanking([[4], [1], [0], [3], [2]]).length, 10); // K = 5 strict: 5·4/2
  assert.equal(expandRanking([[0, 1, 2]]).length, 0); // all tied
  assert.equal(expandRanking([[0, 1], [2, 3]]).length, 4); // 2 × 2 across groups
  assert.throws(() => expandRanking([[0], [0]]), /twice/);
  assert.throws(() => expandRanking([[0], [-1]]), /bad response index/);
});

test("tie groups from the feedback app's order + tie pairs", () => {
  assert.deepEqual(tieGroups(["a", "b", "c", "d"], [["c", "b"]]), [["a"], ["b", "c"], ["d"]]);
  assert.deepEqual(tieGroups([1, 2, 3], [[1, 2], [2, 3]]), [[1, 2, 3]]); // chained ties
  assert.deepEqual(tieGroups([3, 1, 2]), [[3], [1], [2]]);
  assert.throws(() => tieGroups(["a", "b", "c"], [["a", "c"]]), /not neighbours/);
  assert.equal(expandRanking(tieGroups([0, 2, 3, 1], [[2, 3]])).length, 5);
});
