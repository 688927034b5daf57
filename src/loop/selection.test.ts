import { test } from "node:test";
import assert from "node:assert/strict";
import { marginDoubt, memberDisagreement, selectForLabeler } from "./selection.ts";

test("uncertainty selection sends the labeler the comparisons of smallest |margin|, in their order", () => {
  const doubt = marginDoubt([2.5, -0.1, 0.7, 0.05, -3, 0.4, -0.4]);
  // |margin|: 2.5 0.1 0.7 0.05 3 0.4 0.4 → the three smallest are 3 (0.05), 1 (0.1), then 5 (0.4, before 6 by order).
  assert.deepEqual(selectForLabeler(doubt, doubt.length, 3, 0), [1, 3, 5]);
  assert.deepEqual(selectForLabeler(doubt, doubt.length, 1, 0), [3]);
  assert.deepEqual(selectForLabeler(doubt, doubt.length, 10, 0), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(selectForLabeler(doubt, doubt.length, 0, 0), []);
});

test("disagreement selection sends the comparisons whose margins the ensemble's members disagree on most", () => {
  // Three members' margins of four comparisons: 0 all agree, 1 split in sign, 2 agree in sign but spread, 3 nearly agree.
  const margins = [
    [1, 1, 0.5, -2],
    [1, -1, 3, -2.1],
    [1, 0, 1, -1.9],
  ];
  const doubt = memberDisagreement(margins);
  // numpy: np.std([[1,1,1],[1,-1,0],[0.5,3,1],[-2,-2.1,-1.9]], axis=1) = [0, 0.8165, 1.0801, 0.0816]
  [0, 0.816496580927726, 1.0801234497346435, 0.08164965809277268].forEach((x, i) => assert.ok(Math.abs(doubt[i]! - x) < 1e-12, `${i}: ${doubt[i]}`));
  assert.deepEqual(selectForLabeler(doubt, 4, 2, 0), [1, 2]);
  assert.deepEqual(selectForLabeler(doubt, 4, 1, 0), [2]);
});

test("random selection (and any selection without a reward model) is a seeded draw of the budget", () => {
  const a = selectForLabeler(null, 20, 5, 7);
  assert.equal(a.length, 5);
  assert.equal(new Set(a).size, 5);
  assert.ok(a.every((i) => i >= 0 && i < 20));
  assert.deepEqual(a, [...a].sort((x, y) => x - y));
  assert.notDeepEqual(selectForLabeler(null, 20, 5, 8), a, "another seed, another draw");
});
