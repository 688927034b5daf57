import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, type Array } from "../engine/runtime.ts";
import { AdaptiveKLController, FixedKLController, klControllerFromState, klPerToken, klPerTokenHost, type KlEstimator } from "./kl.ts";
import { allClose, arr, close, runArray } from "./test-helpers.ts";

const ln = Math.log;

test("estimators at p = 0.5, p_ref = 0.25", () => {
  const [logp, ref] = [ln(0.5), ln(0.25)];
  // k1 = ln 0.5 − ln 0.25 = ln 2 = 0.693147
  close(klPerTokenHost.k1(logp, ref), 0.693147);
  // k2 = ½ (ln 2)² = ½ · 0.480453 = 0.240227
  close(klPerTokenHost.k2(logp, ref), 0.240227);
  // r = 0.25 / 0.5 = 0.5; k3 = (0.5 − 1) − ln 0.5 = −0.5 + 0.693147 = 0.193147
  close(klPerTokenHost.k3(logp, ref), 0.193147);
});

test("k1 and k3 are unbiased: their expectation under p is the exact KL(p‖q)", () => {
  const p = [0.5, 0.3, 0.2];
  const q = [0.2, 0.5, 0.3];
  // KL = 0.5 ln 2.5 + 0.3 ln 0.6 + 0.2 ln(2/3) = 0.458145 − 0.153248 − 0.081093 = 0.223804
  const exact = 0.223804;
  for (const k of ["k1", "k3"] as const) {
    const expectation = p.reduce((acc, pi, i) => acc + pi * klPerTokenHost[k](ln(pi), ln(q[i]!)), 0);
    close(expectation, exact, 1e-5, k);
  }
  // k2 is biased: E[½ (log r)²] = 0.5·0.5·0.839589 + 0.3·0.5·0.260943 + 0.2·0.5·0.164402
  //   = 0.209897 + 0.039141 + 0.016440 = 0.265479 ≠ KL
  const k2 = p.reduce((acc, pi, i) => acc + pi * klPerTokenHost.k2(ln(pi), ln(q[i]!)), 0);
  close(k2, 0.265479, 1e-5, "k2");
});

test("k2 and k3 are never negative, k1 is whenever p_ref > p", () => {
  const grid = [-8, -3, -1, -0.1, -1e-6, 0, 1e-6, 0.1, 1, 3, 8];
  for (const a of grid) for (const b of grid) {
    assert.ok(klPerTokenHost.k3(a, b) >= 0, `k3(${a}, ${b})`);
    assert.ok(klPerTokenHost.k2(a, b) >= 0, `k2(${a}, ${b})`);
  }
  assert.ok(klPerTokenHost.k1(ln(0.25), ln(0.5)) < 0);
});

test("traced estimators equal the host ones", async () => {
  await initEngine();
  const logp = [ln(0.5), -2, -0.1, -5];
  const ref = [ln(0.25), -1, -0.3, -4.9];
  for (const k of ["k1", "k2", "k3"] as KlEstimator[]) {
    const got = await runArray((a: Array, b: Array) => klPerToken[k](a, b), arr(logp), arr(ref));
    allClose(got, logp.map((l, i) => klPerTokenHost[k](l, ref[i]!)), 1e-5, k);
  }
});

test("adaptive controller over four updates, and its state round-trips", () => {
  const c = new AdaptiveKLController(0.2, 6, 10000);
  c.update(9, 256); // error = clip(9/6 − 1 = 0.5) = 0.2; β = 0.2 · (1 + 0.2·256/10000) = 0.2 · 1.00512 = 0.201024
  close(c.value, 0.201024, 1e-9);
  c.update(6, 256); // on target: error 0, β unchanged
  close(c.value, 0.201024, 1e-9);
  c.update(3, 512); // error = clip(−0.5) = −0.2; β · (1 − 0.2·512/10000) = 0.201024 · 0.98976 = 0.1989655142
  close(c.value, 0.1989655142, 1e-9);
  const restored = klControllerFromState(JSON.parse(JSON.stringify(c.state())));
  restored.update(6.6, 1000); // error = 0.1 (inside the clip); β · 1.01 = 0.2009551693
  close(restored.value, 0.2009551693, 1e-9);
  assert.deepEqual(restored.state(), { kind: "adaptive", value: restored.value, target: 6, horizon: 10000 });
});

test("fixed controller never moves", () => {
  const c = new FixedKLController(0.05);
  c.update(100, 1000);
  assert.equal(c.value, 0.05);
  assert.equal(klControllerFromState(c.state()).value, 0.05);
});
