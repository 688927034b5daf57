// Truncated importance sampling's weights and diagnostics against hand-computed values.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Generation } from "../generation/generate.ts";
import { importanceWeights, rolloutCorrection, samplingMetrics, sequenceImportanceWeights } from "./rollout.ts";

const ln = Math.log;
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} ≠ ${b}`);

/** Sampler log-probs of two responses: the first stopped at EOS after 2 tokens, the second drew 3. */
const generations = [
  { logprobs: [ln(0.1), ln(0.9)] },
  { logprobs: [ln(0.5), ln(0.4), ln(0.2)] },
] as unknown as Generation[];
/** The trainer's log-probs of the same tokens, one more column (the first's appended EOS, padding). */
const trainer = [
  [ln(0.5), ln(0.9), ln(0.7)],
  [ln(0.25), ln(0.6), ln(0.3)],
];

test("importance weights: min(p_trainer / p_sampler, cap) per sampled token, 1 where the sampler drew nothing", () => {
  // Ratios 5, 1 | 0.5, 1.5, 1.5; capped at 2: 2, 1 | 0.5, 1.5, 1.5; the EOS after row 0 gets 1.
  const weights = importanceWeights(generations, trainer, 2);
  [[2, 1, 1], [0.5, 1.5, 1.5]].forEach((row, i) => row.forEach((w, k) => close(weights[i]![k]!, w)));
  close(importanceWeights(generations, trainer, null)[0]![0]!, 5);
});

test("sampling metrics: |Δ log p| over sampled tokens, the ratio as the loss applies it (truncated at the cap)", () => {
  const m = samplingMetrics(generations, trainer, 2);
  // |Δ log p|: ln 5, 0, ln 2, ln 1.5, ln 1.5
  close(m["sampling/sampling_logp_difference/mean"]!, (ln(5) + ln(2) + 2 * ln(1.5)) / 5);
  close(m["sampling/sampling_logp_difference/max"]!, ln(5));
  close(m["sampling/importance_sampling_ratio/min"]!, 0.5);
  close(m["sampling/importance_sampling_ratio/max"]!, 2);
  close(m["sampling/importance_sampling_ratio/mean"]!, (2 + 1 + 0.5 + 1.5 + 1.5) / 5);
  close(samplingMetrics(generations, trainer, null)["sampling/importance_sampling_ratio/max"]!, 5);
});

test("sequence-level weights (RLOO): min(Π over a completion's sampled tokens of p_trainer / p_sampler, cap), logged as such", () => {
  // Row 0: 5 · 1 = 5 → 2 at the cap; row 1: 0.5 · 1.5 · 1.5 = 1.125.
  const weights = sequenceImportanceWeights(generations, trainer, 2);
  assert.deepEqual(weights.map((row) => row.length), [1, 1]);
  close(weights[0]![0]!, 2);
  close(weights[1]![0]!, 1.125);
  close(sequenceImportanceWeights(generations, trainer, null)[0]![0]!, 5);
  const m = samplingMetrics(generations, trainer, 2, "sequence");
  close(m["sampling/importance_sampling_ratio/mean"]!, (2 + 1.125) / 2);
  close(m["sampling/sampling_logp_difference/max"]!, ln(5));
});

test("rolloutCorrection: nothing for the built-in generator; metrics alone with the correction off; weights at the asked level with it on", () => {
  const c = { rollout_engine: "llama.cpp" as const, rollout_importance_sampling_correction: true, rollout_importance_sampling_cap: 2 };
  assert.deepEqual(rolloutCorrection({ ...c, rollout_engine: "jax-js" }, generations, trainer), { metrics: {} });
  const off = rolloutCorrection({ ...c, rollout_importance_sampling_correction: false }, generations, trainer);
  assert.equal(off.weights, undefined);
  close(off.metrics["sampling/importance_sampling_ratio/max"]!, 5); // untruncated when nothing is applied
  assert.deepEqual(rolloutCorrection(c, generations, trainer).weights, importanceWeights(generations, trainer, 2));
  assert.deepEqual(rolloutCorrection(c, generations, trainer, "sequence").weights, sequenceImportanceWeights(generations, trainer, 2));
});
