import { test } from "node:test";
import assert from "node:assert/strict";
import { bestOfNExpectation, bestOfNKl, fitBestOfN, fitRl, gaoBestOfN, gaoRl } from "./overoptimization.ts";

const close = (actual: number, expected: number, tol = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${actual} vs ${expected}`);

test("best-of-n KL: log n − (n−1)/n", () => {
  close(bestOfNKl(1), 0);
  close(bestOfNKl(2), 0.193147181); // ln 2 − ½
  close(bestOfNKl(64), 3.174508083); // ln 64 − 63/64 = 4.158883083 − 0.984375
  assert.throws(() => bestOfNKl(0), /integer ≥ 1/);
});

/** Every n-subset of 0..N−1. */
function* subsets(N: number, n: number, start = 0, chosen: number[] = []): Generator<number[]> {
  if (chosen.length === n) return yield chosen;
  for (let i = start; i < N; i++) yield* subsets(N, n, i + 1, [...chosen, i]);
}

test("best-of-n expectation equals the mean over every n-subset of the gold of its proxy-best sample", () => {
  const proxy = [0.3, -1.2, 2.5, 0.9, -0.4, 1.7, 0.1];
  const gold = [1.0, -0.5, -2.0, 0.7, 0.2, 1.5, -0.1];
  for (let n = 1; n <= proxy.length; n++) {
    let total = 0, count = 0;
    for (const s of subsets(proxy.length, n)) {
      const best = s.reduce((b, i) => (proxy[i]! > proxy[b]! ? i : b));
      total += gold[best]!;
      count++;
    }
    close(bestOfNExpectation(proxy, gold, n), total / count, 1e-12);
  }
  // n = 1 is the plain mean; n = N the gold of the proxy's argmax (index 2).
  close(bestOfNExpectation(proxy, gold, 1), gold.reduce((a, b) => a + b) / gold.length);
  close(bestOfNExpectation(proxy, gold, proxy.length), -2.0);
});

test("Gao fits recover the coefficients of exact curves, and the closed-form peaks", () => {
  const d = [0, 0.5, 1, 1.5, 2, 3, 4];
  const bon = fitBestOfN(d, d.map((x) => gaoBestOfN({ alpha: 1.2, beta: 0.3 }, x)));
  close(bon.alpha, 1.2);
  close(bon.beta, 0.3);
  close(bon.peak_d, 2); // α / 2β
  close(bon.peak_gold, 1.2); // α² / 4β
  assert.ok(bon.rmse < 1e-9);
  const rl = fitRl(d, d.map((x) => gaoRl({ alpha: 0.8, beta: 0.4 }, x)));
  close(rl.alpha, 0.8);
  close(rl.beta, 0.4);
  close(rl.peak_d, Math.E); // exp(α/β − 1) = e
  close(rl.peak_gold, Math.E * 0.4); // d(α − β log d) at d = e: e(0.8 − 0.4)
});

test("Gao fit of noisy points: the least-squares solution (numpy.linalg.lstsq)", () => {
  // numpy.linalg.lstsq([d, −d²], y) for d = [1, 2, 3], y = [1, 1.5, 1]: the normal equations
  // [[14, −36], [−36, 98]] [α, β] = [7, −16] give α = 110/76, β = 28/76; the fitted values
  // 1.078947, 1.421053, 1.026316 leave residuals −3/38, 3/38, −1/38.
  const fit = fitBestOfN([1, 2, 3], [1, 1.5, 1]);
  close(fit.alpha, 1.44736842105263);
  close(fit.beta, 0.368421052631579);
  close(fit.rmse, Math.sqrt((9 + 9 + 1) / 38 ** 2 / 3));
  assert.throws(() => fitRl([1, 1], [0.5, 0.5]), /do not determine/);
});
