import assert from "node:assert/strict";
import { test } from "node:test";
import { binomialTestHalf, cohensKappa, fleissKappa, krippendorffAlpha } from "./agreement.ts";

const close = (actual: number | null, expected: number, tol = 1e-3) =>
  assert.ok(actual !== null && Math.abs(actual - expected) < tol, `${actual} is not ${expected}`);

test("Fleiss' kappa: the worked example of Fleiss (1971) as on Wikipedia, 14 raters, 10 items, 5 categories", () => {
  const counts = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
  ];
  close(fleissKappa(counts), 0.210);
});

test("Fleiss' kappa: perfect agreement is 1, undefined when everything is one category", () => {
  close(fleissKappa([[3, 0, 0], [0, 3, 0], [0, 0, 3]]), 1);
  assert.equal(fleissKappa([[2, 0], [2, 0]]), null);
  // Hand-computed: two raters, items (A,A), (A,B): P̄ = (1 + 0)/2 = 0.5; p = (3/4, 1/4), Pe = 0.625;
  // kappa = (0.5 - 0.625) / 0.375 = -1/3.
  close(fleissKappa([[2, 0], [1, 1]]), -1 / 3, 1e-12);
});

// Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units
// example with missing data; published: nominal 0.743, ordinal 0.815, interval 0.849.
const reliabilityData = [
  [1, 2, 3, 3, 2, 1, 4, 1, 2, NaN, NaN, NaN],
  [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NaN, 3],
  [NaN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NaN],
  [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NaN],
];
const units = reliabilityData[0]!.map((_, u) => reliabilityData.map((row) => row[u]!).filter((v) => !Number.isNaN(v)));

test("Krippendorff's alpha: the published nominal, ordinal and interval values", () => {
  close(krippendorffAlpha(units, "nominal"), 0.743);
  close(krippendorffAlpha(units, "ordinal"), 0.815);
  close(krippendorffAlpha(units, "interval"), 0.849);
});

test("Krippendorff's alpha: perfect agreement is 1, no variation is undefined", () => {
  close(krippendorffAlpha([[1, 1], [2, 2, 2], [5, 5]], "interval"), 1, 1e-12);
  assert.equal(krippendorffAlpha([[3, 3], [3, 3]], "ordinal"), null);
  // Hand-computed nominal: units (1,1), (1,2). Coincidences o11 = 2, o12 = o21 = 1; n1 = 3, n2 = 1, n = 4.
  // alpha = 1 - (n-1) * (o12 + o21) / (n1 n2 + n2 n1) = 1 - 3 * 2 / 6 = 0.
  close(krippendorffAlpha([[1, 1], [1, 2]], "nominal"), 0, 1e-12);
});

test("binomial test against 1/2", () => {
  close(binomialTestHalf(5, 10), 1, 1e-12);
  close(binomialTestHalf(0, 5), 2 / 32, 1e-12); // P(0) + P(5)
  close(binomialTestHalf(9, 10), 22 / 1024, 1e-12); // P(0) + P(1) + P(9) + P(10)
});

test("Cohen's kappa: Wikipedia's worked example (po 0.7, pe 0.5 → 0.4), perfect agreement, undefined for one category", () => {
  assert.ok(Math.abs(cohensKappa([[20, 5], [10, 15]])! - 0.4) < 1e-12);
  assert.equal(cohensKappa([[3, 0, 0], [0, 4, 0], [0, 0, 2]]), 1);
  assert.equal(cohensKappa([[5]]), null);
  assert.equal(cohensKappa([[0, 0], [0, 0]]), null);
});
