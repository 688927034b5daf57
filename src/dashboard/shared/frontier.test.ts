import assert from "node:assert/strict";
import { test } from "node:test";
import { upperFrontier } from "./frontier.ts";

const pts = (xs: [number, number][]) => xs.map(([kl, reward]) => ({ kl, reward }));

test("the frontier keeps the points no other point beats on both KL and reward, by rising KL", () => {
  //                      0        1        2        3        4          5
  const p = pts([[3, 3], [0, 0], [2, 1], [1, 2], [3, 2.5], [4, 3]]);
  // (2,1) is beaten by (1,2); (3,2.5) by (3,3); (4,3) buys nothing over (3,3).
  assert.deepEqual(upperFrontier(p), [1, 3, 0]);
});

test("at equal KL only the best reward is on the frontier; non-finite points are left out", () => {
  const p = pts([[1, 1], [1, 2], [Number.NaN, 9], [2, Number.POSITIVE_INFINITY], [0.5, -1]]);
  assert.deepEqual(upperFrontier(p), [4, 1]);
});

test("no points, no frontier; one point is its own frontier", () => {
  assert.deepEqual(upperFrontier([]), []);
  assert.deepEqual(upperFrontier(pts([[2, -1]])), [0]);
});
