// Each monitor on hand-made series: it fires at the step the condition starts, not before, not
// again while it lasts, and never on a steady (noisy but trendless) series.
import { test } from "node:test";
import assert from "node:assert/strict";
import { monitorDefaults } from "../../train/monitor-config.ts";
import { rewardStats } from "../../train/reward-stats.ts";
import { MonitorSet, monitorsFor } from "./monitor-set.ts";
import type { Monitor, StepSignals } from "./monitor.ts";
import { distinct2, stepSignals } from "./signals.ts";
import { entropyCollapse, lengthJump, repetition } from "./drift.ts";
import { klAcceleration, klCeiling } from "./kl.ts";
import { nonFinite, truncation } from "./health.ts";
import { rewardOutOfRange } from "./reward-range.ts";
import { rmDisagreement } from "./rm-disagreement.ts";
import { approxKlSpike, clipFractionSpike, valueLossBlowup } from "./updates.ts";

/** A steady step: every signal at a plausible value. */
function steady(step: number): StepSignals {
  return { step, length: 40, klPerToken: 0.1, entropyPerToken: 1, distinct2: 0.8, truncatedShare: 0.2, scores: [0, 0.5, -0.5, 0.2], approxKl: 0.003, clipFraction: 0.03, valueLoss: 0.1, ensembleStd: null, nonFinite: [] };
}

/** A deterministic wiggle of ±`amplitude` (relative), so "steady" series are noisy like real ones. */
const wiggle = (step: number, amplitude: number) => 1 + amplitude * Math.sin(step * 2.3);

/** The steps at which `monitor` fires over `steps` steps whose signals `change` makes from steady ones. */
function firingSteps(monitor: Monitor, steps: number, change: (s: StepSignals) => Partial<StepSignals>): number[] {
  const set = new MonitorSet([monitor], 10);
  const fired: number[] = [];
  for (let step = 1; step <= steps; step++) {
    const base = steady(step);
    for (const e of set.observe({ ...base, ...change(base) })) fired.push(e.step);
  }
  return fired;
}

test("response_length: fires when the length jumps against its rolling median, either way; not on a wiggling series", () => {
  const m = lengthJump(1.5, 10);
  assert.deepEqual(firingSteps(m, 40, (s) => ({ length: 40 * wiggle(s.step, 0.2) })), []);
  // Doubles at step 25 and stays: one firing; by step 35 the doubled length is the median, so it is the new normal.
  assert.deepEqual(firingSteps(m, 40, (s) => ({ length: s.step >= 25 ? 80 : 40 })), [25]);
  assert.deepEqual(firingSteps(m, 30, (s) => ({ length: s.step >= 20 ? 12 : 40 })), [20]);
  // Too little history for a baseline: a jump at step 3 is not judged.
  assert.deepEqual(firingSteps(m, 4, (s) => ({ length: s.step >= 3 ? 200 : 40 })), []);
});

test("kl_ceiling: fires on the first step above the ceiling, once while it stays above", () => {
  const m = klCeiling(0.5);
  assert.deepEqual(firingSteps(m, 30, (s) => ({ klPerToken: 0.02 * s.step })), [26]);
  assert.deepEqual(firingSteps(m, 30, () => ({ klPerToken: 0.5 })), []);
  const e = new MonitorSet([m], 10).observe({ ...steady(1), klPerToken: 0.6, length: 50 });
  assert.deepEqual(e, [{ step: 1, monitor: "kl_ceiling", value: 0.6, threshold: 0.5, message: "KL to the reference 0.6 nats/token (30 per completion) is above the ceiling 0.5" }]);
});

test("kl_acceleration: a steady climb does not fire; a climb that turns three times steeper does, a few steps in", () => {
  const m = klAcceleration(3, 10);
  // Linear growth with noise: the rise of each window is the same.
  assert.deepEqual(firingSteps(m, 60, (s) => ({ klPerToken: 0.01 * s.step * wiggle(s.step, 0.1) })), []);
  // Flat (noisy) KL does not fire either: no rise above MIN_KL_RISE.
  assert.deepEqual(firingSteps(m, 60, (s) => ({ klPerToken: 0.1 * wiggle(s.step, 0.3) })), []);
  // 0.01/step until step 30, then 0.06/step: the last window's rise (half-means 5 steps apart)
  // passes 3x the previous one's (0.05) once the steep part fills its second half's mean enough.
  const kl = (step: number) => (step <= 30 ? 0.01 * step : 0.3 + 0.06 * (step - 30));
  const fired = firingSteps(m, 50, (s) => ({ klPerToken: kl(s.step) }));
  assert.equal(fired.length, 1);
  assert.ok(fired[0]! > 30 && fired[0]! <= 36, `fired at ${fired[0]}`);
  // Exactly: at step s the rise is mean(kl[s-4..s]) − mean(kl[s-9..s-5]); the first s where it exceeds 0.15.
  const mean = (from: number) => [0, 1, 2, 3, 4].reduce((a, i) => a + kl(from + i), 0) / 5;
  const expected = Array.from({ length: 50 }, (_, i) => i + 1).find((s) => s >= 20 && mean(s - 4) - mean(s - 9) > 3 * (mean(s - 14) - mean(s - 19)))!;
  assert.equal(fired[0], expected);
});

test("entropy_collapse: fires when entropy falls below half its first steps' mean", () => {
  const m = entropyCollapse(0.5);
  assert.deepEqual(firingSteps(m, 40, (s) => ({ entropyPerToken: wiggle(s.step, 0.3) })), []);
  // 1.0 falling by 0.03 a step from step 6: 1 − 0.03 (s − 5) < 0.5 first at s = 22.
  assert.deepEqual(firingSteps(m, 40, (s) => ({ entropyPerToken: s.step <= 5 ? 1 : 1 - 0.03 * (s.step - 5) })), [22]);
});

test("repetition: distinct-2 and its monitor", () => {
  assert.equal(distinct2(["the cat sat", "the cat ran"]), 3 / 4);
  assert.equal(distinct2(["Sue was happy. Sue was happy. Sue was happy."]), 3 / 8);
  assert.equal(distinct2(["one"]), 1);
  const m = repetition(0.75);
  assert.deepEqual(firingSteps(m, 30, (s) => ({ distinct2: 0.8 * wiggle(s.step, 0.1) })), []);
  assert.deepEqual(firingSteps(m, 30, (s) => ({ distinct2: s.step >= 12 ? 0.5 : 0.8 })), [12]);
});

test("truncated_share: fires when most completions become truncated, or at once when truncation loses the signal", () => {
  assert.deepEqual(firingSteps(truncation(0.95, false), 20, (s) => ({ truncatedShare: s.step >= 9 ? 1 : 0.3 })), [9]);
  // Always cut (stories at 48 tokens) and not penalised: never.
  assert.deepEqual(firingSteps(truncation(0.95, false), 20, () => ({ truncatedShare: 1 })), []);
  // Penalised (missing_eos_penalty) or masked: from the first step.
  assert.deepEqual(firingSteps(truncation(0.95, true), 20, () => ({ truncatedShare: 1 })), [1]);
});

test("update spikes: approx-KL, clip fraction and value loss against their rolling medians, above their floors", () => {
  assert.deepEqual(firingSteps(approxKlSpike(5, 10), 30, (s) => ({ approxKl: s.step === 20 ? 0.08 : 0.004 * wiggle(s.step, 0.5) })), [20]);
  // Below the floor (0.01) a 10x jump is noise.
  assert.deepEqual(firingSteps(approxKlSpike(5, 10), 30, (s) => ({ approxKl: s.step === 20 ? 0.009 : 0.0009 })), []);
  assert.deepEqual(firingSteps(clipFractionSpike(5, 10), 30, (s) => ({ clipFraction: s.step >= 15 ? 0.4 : 0.03 })), [15]);
  // A value loss falling over the run (as PPO's does) never fires; a 20x jump does.
  assert.deepEqual(firingSteps(valueLossBlowup(10, 10), 40, (s) => ({ valueLoss: 1 / s.step })), []);
  assert.deepEqual(firingSteps(valueLossBlowup(10, 10), 40, (s) => ({ valueLoss: s.step === 30 ? 2 : 0.1 })), [30]);
  // Trainers without the signal (null) never fire.
  assert.deepEqual(firingSteps(valueLossBlowup(10, 10), 20, () => ({ valueLoss: null })), []);
});

test("reward_ood: the share of scores outside the training data's [p1, p99]", () => {
  const stats = rewardStats(Array.from({ length: 101 }, (_, i) => i / 100 - 0.5), "data", "train");
  assert.deepEqual(Object.keys(stats.percentiles), ["p0", "p1", "p5", "p25", "p50", "p75", "p95", "p99", "p100"]);
  assert.ok(Math.abs(stats.percentiles.p1! + 0.49) < 1e-12 && Math.abs(stats.percentiles.p99! - 0.49) < 1e-12 && stats.percentiles.p50 === 0);
  const m = rewardOutOfRange(0.5, stats);
  assert.deepEqual(firingSteps(m, 20, () => ({ scores: [0, 0.4, -0.4, 0.6] })), []);
  const fired = new MonitorSet([m], 10).observe({ ...steady(7), scores: [0.6, 0.7, -0.6, 0.1] });
  assert.equal(fired.length, 1);
  assert.equal(fired[0]!.value, 0.75);
});

test("rm_disagreement: fires when the ensemble's std passes twice its start while the score rises; quiet on flat or falling series and without an ensemble", () => {
  const m = rmDisagreement(2);
  const score = (step: number) => [0, 0.5, -0.5, 0.2].map((x) => x + 0.1 * step);
  // The std grows 0.1 → 0.1 + 0.02 (s − 5) from step 6 and the score climbs 0.1 a step: the std passes 0.2 (twice its start) first at s = 11.
  const growing = (s: StepSignals) => ({ ensembleStd: s.step <= 5 ? 0.1 : 0.1 + 0.02 * (s.step - 5), scores: score(s.step) });
  assert.deepEqual(firingSteps(m, 30, growing), [11]);
  // A wiggling std (±30%) under a rising score: never.
  assert.deepEqual(firingSteps(m, 40, (s) => ({ ensembleStd: 0.1 * wiggle(s.step, 0.3), scores: score(s.step) })), []);
  // The same growing std under a flat or a falling score: the policy is not climbing where they disagree.
  assert.deepEqual(firingSteps(m, 30, (s) => ({ ensembleStd: growing(s).ensembleStd })), []);
  assert.deepEqual(firingSteps(m, 30, (s) => ({ ensembleStd: growing(s).ensembleStd, scores: score(-s.step) })), []);
  // A falling std: never.
  assert.deepEqual(firingSteps(m, 30, (s) => ({ ensembleStd: 0.3 / s.step, scores: score(s.step) })), []);
  // Not an ensemble (no objective/rm_ensemble_std): never.
  assert.deepEqual(firingSteps(m, 30, (s) => ({ scores: score(s.step) })), []);
  assert.equal(stepSignals(1, { metrics: { "objective/rm_ensemble_std": 0.25 }, samples: [], generatedTokens: 0 }).ensembleStd, 0.25);
});

test("non_finite: fires on NaN or infinite metrics and scores", () => {
  const s = stepSignals(3, { metrics: { "objective/kl": NaN, loss: 1 }, samples: [{ completion: "a b", score: Infinity }], generatedTokens: 2 });
  assert.deepEqual(s.nonFinite, ["objective/kl", "scores"]);
  assert.deepEqual(firingSteps(nonFinite(), 10, (x) => ({ nonFinite: x.step === 6 ? ["loss"] : [] })), [6]);
});

test("stepSignals reads PPO's, GRPO's and online DPO's names alike", () => {
  const ppo = stepSignals(1, { metrics: { "objective/kl": 4, "objective/entropy": 20, "val/num_eos_tokens": 1, "policy/approxkl_avg": 0.01, "policy/clipfrac_avg": 0.1, "loss/value_avg": 0.5 }, samples: [{ completion: "x", score: 1 }, { completion: "y", score: 2 }], generatedTokens: 80 });
  assert.deepEqual([ppo.length, ppo.klPerToken, ppo.entropyPerToken, ppo.truncatedShare, ppo.scores], [40, 0.1, 0.5, 0.5, [1, 2]]);
  const grpo = stepSignals(1, { metrics: { "objective/kl": 2, entropy: 0.7, "completions/clipped_ratio": 0.25, "clip_ratio/region_mean": 0.02 }, samples: [{ completion: "x", score: 1, advantage: 0 }], generatedTokens: 20 });
  assert.deepEqual([grpo.klPerToken, grpo.entropyPerToken, grpo.truncatedShare, grpo.clipFraction, grpo.valueLoss], [0.1, 0.7, 0.25, 0.02, null]);
  const odpo = stepSignals(1, { metrics: { "objective/kl": 3, "objective/entropy": 6, "val/contain_eos_token": 0.75 }, samples: [{ prompt: "p", chosen: "a b", rejected: "c d", chosen_score: 1, rejected_score: -1 }], generatedTokens: 12 });
  assert.deepEqual([odpo.length, odpo.klPerToken, odpo.entropyPerToken, odpo.truncatedShare, odpo.scores], [6, 0.5, 1, 0.25, [1, -1]]);
});

test("monitorsFor: thresholds from the config, null turns one off, reward_ood off with a note without statistics", () => {
  const context = { rewardStats: null, rewardStatsMissing: "rm has no reward_stats.json", truncationLosesSignal: false };
  const all = monitorsFor(monitorDefaults, context);
  assert.deepEqual(all.monitors.map((m) => m.name), ["non_finite", "response_length", "kl_ceiling", "kl_acceleration", "entropy_collapse", "repetition", "truncated_share", "approxkl_spike", "clipfrac_spike", "value_loss_blowup", "rm_disagreement"]);
  assert.deepEqual(all.notes, ["monitor reward_ood is off: rm has no reward_stats.json"]);
  const some = monitorsFor({ ...monitorDefaults, monitor_kl_ceiling: null, monitor_reward_ood: null }, { ...context, rewardStats: rewardStats([0, 1], "d", "all") });
  assert.ok(!some.monitors.some((m) => m.name === "kl_ceiling" || m.name === "reward_ood"));
  assert.deepEqual(some.notes, []);
});

test("MonitorSet's state resumes it exactly: the same events as an uninterrupted run", () => {
  const { monitors } = monitorsFor(monitorDefaults, { rewardStats: null, truncationLosesSignal: false });
  const signals = (step: number): StepSignals => ({ ...steady(step), klPerToken: 0.03 * step, entropyPerToken: 1 - 0.02 * step, length: step === 33 ? 90 : 40 });
  const straight = new MonitorSet(monitors, 10);
  const all = Array.from({ length: 45 }, (_, i) => straight.observe(signals(i + 1))).flat();
  const first = new MonitorSet(monitors, 10);
  for (let s = 1; s <= 27; s++) first.observe(signals(s));
  const resumed = new MonitorSet(monitors, 10, JSON.parse(JSON.stringify(first.state)));
  const after = Array.from({ length: 18 }, (_, i) => resumed.observe(signals(i + 28))).flat();
  assert.deepEqual(after, all.filter((e) => e.step > 27));
  assert.ok(all.length >= 3, JSON.stringify(all.map((e) => [e.step, e.monitor])));
});
