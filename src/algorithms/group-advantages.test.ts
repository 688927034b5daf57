import { test } from "node:test";
import assert from "node:assert/strict";
import { grpoAdvantages, normalizeAdvantages, rlooAdvantages } from "./group-advantages.ts";
import { allClose, close } from "./test-helpers.ts";

test("RLOO of [1, 2, 3, 6]: each reward minus the mean of the other three", () => {
  // sum 12: 1 − 11/3 = −8/3, 2 − 10/3 = −4/3, 3 − 9/3 = 0, 6 − 6/3 = 4
  allClose(rlooAdvantages([1, 2, 3, 6], 4), [-8 / 3, -4 / 3, 0, 4]);
  // two groups of two: each is the difference to its partner
  allClose(rlooAdvantages([1, 3, 5, 5], 2), [-2, 2, 0, 0]);
  assert.throws(() => rlooAdvantages([1, 2, 3], 2), /groups of 2/);
});

test("GRPO advantages: group-normalised with the unbiased std, + 1e-4", () => {
  // mean 3, deviations [−2, −1, 0, 3], squares sum 14, std = √(14/3) = 2.160247
  const s = Math.sqrt(14 / 3) + 1e-4;
  allClose(grpoAdvantages([1, 2, 3, 6], 4), [-2 / s, -1 / s, 0, 3 / s]);
  close(-2 / s, -0.925777, 1e-6); // torch: ((x − x.mean()) / (x.std() + 1e-4))[0] = −0.925777
  // a group with equal rewards gets zero advantages, not NaN
  const two = grpoAdvantages([0, 0, 1, 1, 5, 5, 5, 5], 4);
  const s1 = Math.sqrt(1 / 3) + 1e-4; // deviations ±0.5: std = √(4·0.25/3) = 0.577350
  allClose(two, [-0.5 / s1, -0.5 / s1, 0.5 / s1, 0.5 / s1, 0, 0, 0, 0]);
  allClose(grpoAdvantages([1, 2, 3, 6], 4, "none"), [-2, -1, 0, 3]);
  // batch std of [0, 0, 1, 1, 5, 5, 5, 5]: mean 2.75, squares 7.5625·2 + 3.0625·2 + 5.0625·4 = 41.5, /7 → √5.928571 = 2.434866
  const sb = Math.sqrt(41.5 / 7) + 1e-4;
  allClose(grpoAdvantages([0, 0, 1, 1, 5, 5, 5, 5], 4, "batch"), [-0.5 / sb, -0.5 / sb, 0.5 / sb, 0.5 / sb, 0, 0, 0, 0]);
});

test("RLOO's advantages normalised over the batch: mean 0, Bessel std, + 1e-4", () => {
  const s = Math.sqrt(14 / 3) + 1e-4; // [1, 2, 3, 6]: mean 3, std 2.160247
  allClose(normalizeAdvantages([1, 2, 3, 6]), [-2 / s, -1 / s, 0, 3 / s]);
});
