import { test } from "node:test";
import assert from "node:assert/strict";
import { selectForLabeler } from "./selection.ts";

test("uncertainty selection sends the labeler the comparisons of smallest |margin|, in their order", () => {
  const margins = [2.5, -0.1, 0.7, 0.05, -3, 0.4, -0.4];
  // |margin|: 2.5 0.1 0.7 0.05 3 0.4 0.4 → the three smallest are 3 (0.05), 1 (0.1), then 5 (0.4, before 6 by order).
  assert.deepEqual(selectForLabeler(margins, margins.length, 3, "uncertainty", 0), [1, 3, 5]);
  assert.deepEqual(selectForLabeler(margins, margins.length, 1, "uncertainty", 0), [3]);
  assert.deepEqual(selectForLabeler(margins, margins.length, 10, "uncertainty", 0), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(selectForLabeler(margins, margins.length, 0, "uncertainty", 0), []);
});

test("random selection (and uncertainty without a reward model) is a seeded draw of the budget", () => {
  const a = selectForLabeler(null, 20, 5, "uncertainty", 7);
  assert.equal(a.length, 5);
  assert.equal(new Set(a).size, 5);
  assert.ok(a.every((i) => i >= 0 && i < 20));
  assert.deepEqual(a, [...a].sort((x, y) => x - y));
  assert.deepEqual(selectForLabeler([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 20, 5, "random", 7), a, "random ignores the margins");
  assert.notDeepEqual(selectForLabeler(null, 20, 5, "random", 8), a, "another seed, another draw");
});
