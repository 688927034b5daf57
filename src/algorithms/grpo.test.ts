// GRPO's loss family against a float64 closed form: every loss_type at both importance-sampling
// levels, with and without the KL term, on one small off-policy batch built so that each clip
// branch is taken (clipped high and low, inside the band only thanks to epsilon_high, cispo's cap
// exceeded, sapo's two temperatures). The closed form gives the loss, the metrics and the
// gradient w.r.t. the log-probs by hand-derived derivatives (cispo's detached weight and sapo's
// gate are checked through them), not by differentiating the code under test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, lax, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, release, toHost, toNumber } from "../engine/arrays.ts";
import { CISPO_EPSILON_HIGH, defaultGRPOConfig, epsilonHigh, grpoLosses, type GRPOConfig, type GrpoLossInputs, type GrpoLossType, type ImportanceSamplingLevel } from "./grpo.ts";
import { allClose, arr, close, runLoss } from "./test-helpers.ts";

const ln = Math.log;
const LOSS_TYPES: GrpoLossType[] = ["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo"];
const LEVELS: ImportanceSamplingLevel[] = ["token", "sequence"];

interface HostBatch {
  logprobs: number[][];
  oldLogprobs: number[][];
  refLogprobs: number[][];
  advantages: number[];
  mask: number[][];
}

// Three completions of 3, 4 and 2 tokens (T = 4). Log-ratios log π − log π_old per token:
//   row 0, A = 1.5:  ln 1.25 (inside [0.8, 1.28] only with epsilon_high 0.28), ln 1.5 (clipped
//                    high), ln 6 (clipped high; above cispo's cap 5), then padding (ratio e³)
//   row 1, A = −0.5: ln 0.7, ln 0.6, ln 0.5 (clipped low), ln 1.3 (A < 0: the unclipped side binds)
//   row 2, A = 0.8:  ln 0.7 (A > 0: not clipped), ln 1.05, then padding
// At the sequence level row 0's ratio is 11.25^⅓ = 2.24 (clipped high), row 1's 0.273^¼ = 0.72
// (clipped low), row 2's 0.86: shares of completions (⅓ each) differ from shares of tokens.
const LOGPROBS = [[-0.5, -1.2, -0.3, -2.0], [-0.8, -0.1, -1.5, -0.7], [-1.0, -0.4, -0.6, -0.9]];
const LOG_RATIOS = [[ln(1.25), ln(1.5), ln(6), 3], [ln(0.7), ln(1.3), ln(0.6), ln(0.5)], [ln(0.7), ln(1.05), 3, 3]];
const REF_GAPS = [[0.3, -0.2, 0.5, 1], [-0.4, 0.1, 0.2, -0.3], [0.25, -0.15, 1, 1]]; // log π − log π_ref
const batch: HostBatch = {
  logprobs: LOGPROBS,
  oldLogprobs: LOGPROBS.map((row, b) => row.map((x, t) => x - LOG_RATIOS[b]![t]!)),
  refLogprobs: LOGPROBS.map((row, b) => row.map((x, t) => x - REF_GAPS[b]![t]!)),
  advantages: [1.5, -0.5, 0.8],
  mask: [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]],
};

const config = (over: Partial<GRPOConfig>): GRPOConfig => ({ ...defaultGRPOConfig, max_completion_length: 4, ...over });

/** Some rows of a batch (a micro-batch). */
const part = (h: HostBatch, rows: number[]): HostBatch => ({
  logprobs: rows.map((b) => h.logprobs[b]!),
  oldLogprobs: rows.map((b) => h.oldLogprobs[b]!),
  refLogprobs: rows.map((b) => h.refLogprobs[b]!),
  advantages: rows.map((b) => h.advantages[b]!),
  mask: rows.map((b) => h.mask[b]!),
});

const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The float64 closed form: loss, metrics and d loss / d log π; `weights`: truncated importance weights ([B, T] or [B, 1]), constants on each token's objective. */
function reference(h: HostBatch, c: GRPOConfig, tokenNormalizer?: number, weights?: number[][]) {
  const B = h.logprobs.length;
  const T = h.logprobs[0]!.length;
  const lengths = h.mask.map(sum);
  const tokens = sum(lengths);
  const sequence = c.importance_sampling_level === "sequence";
  const epsHigh = c.epsilon_high ?? (c.loss_type === "cispo" ? 5 : c.epsilon);
  // log importance weight per token (at the sequence level the row's mean, repeated)
  const logW = h.logprobs.map((row, b) => {
    const perToken = row.map((x, t) => x - h.oldLogprobs[b]![t]!);
    const rowMean = sum(perToken.map((x, t) => x * h.mask[b]![t]!)) / Math.max(1, lengths[b]!);
    return sequence ? perToken.map(() => rowMean) : perToken;
  });
  // Per token: the objective f, its derivative through the ratio (d f / d log w) and its direct
  // derivative in log π (cispo's log π factor); k3 and its derivative.
  const f: number[][] = [];
  const dLogW: number[][] = [];
  const dDirect: number[][] = [];
  const low: number[][] = [];
  const high: number[][] = [];
  const capped: number[][] = [];
  for (let b = 0; b < B; b++) {
    const A = h.advantages[b]!;
    [f[b], dLogW[b], dDirect[b], low[b], high[b], capped[b]] = [[], [], [], [], [], []];
    for (let t = 0; t < T; t++) {
      const r = Math.exp(logW[b]![t]!);
      const [lo, hi] = [1 - c.epsilon, 1 + epsHigh];
      let value: number;
      let viaRatio = 0;
      let direct = 0;
      if (c.loss_type === "cispo") {
        const weight = Math.min(r, epsHigh); // detached: no derivative through the ratio
        value = -weight * A * h.logprobs[b]![t]!;
        direct = -weight * A;
      } else if (c.loss_type === "sapo") {
        const tau = A > 0 ? c.sapo_temperature_pos : c.sapo_temperature_neg;
        const s = sigmoid(tau * (r - 1));
        value = (-s * 4 * A) / tau;
        viaRatio = -4 * A * s * (1 - s) * r; // d/d log r of −σ(τ(r − 1))·4/τ·A
      } else {
        const clippedRatio = Math.min(Math.max(r, lo), hi);
        value = -Math.min(r * A, clippedRatio * A);
        // The unclipped side binds (or both agree): −r·A; the clipped side is constant.
        viaRatio = r * A <= clippedRatio * A ? -r * A : 0;
      }
      const is = weights ? (weights[b]![t] ?? weights[b]![0]!) : 1;
      f[b]![t] = is * value;
      dLogW[b]![t] = is * viaRatio;
      dDirect[b]![t] = is * direct;
      low[b]![t] = r < lo && A < 0 ? 1 : 0;
      high[b]![t] = r > hi && A > 0 ? 1 : 0;
      capped[b]![t] = r > epsHigh && A > 0 ? 1 : 0;
    }
  }
  const k3 = (b: number, t: number) => Math.exp(h.refLogprobs[b]![t]! - h.logprobs[b]![t]!) - (h.refLogprobs[b]![t]! - h.logprobs[b]![t]!) - 1;
  const dk3 = (b: number, t: number) => 1 - Math.exp(h.refLogprobs[b]![t]! - h.logprobs[b]![t]!);
  // Each valid token's weight in the aggregate.
  const weight = (b: number, t: number): number => {
    const m = h.mask[b]![t]!;
    switch (c.loss_type) {
      case "grpo":
      case "sapo":
        return m / (Math.max(1, lengths[b]!) * B);
      case "bnpo":
        return m / Math.max(1, tokens);
      case "dr_grpo":
        return m / (B * c.max_completion_length);
      case "dapo":
      case "cispo":
        return m / (tokenNormalizer ?? Math.max(1, tokens));
    }
  };
  let loss = 0;
  const grad = h.logprobs.map((row) => row.map(() => 0));
  for (let b = 0; b < B; b++) {
    // At the sequence level every token's ratio depends on every log π of its row through the mean.
    const rowViaRatio = sum(h.logprobs[b]!.map((_, t) => weight(b, t) * dLogW[b]![t]!));
    for (let t = 0; t < T; t++) {
      const w = weight(b, t);
      loss += w * (f[b]![t]! + c.beta * k3(b, t));
      grad[b]![t] = w * (dDirect[b]![t]! + c.beta * dk3(b, t)) + (sequence ? (rowViaRatio * h.mask[b]![t]!) / Math.max(1, lengths[b]!) : w * dLogW[b]![t]!);
    }
  }
  const share = (indicator: number[][]) =>
    sequence ? sum(indicator.map((row) => row[0]!)) / B : sum(indicator.flatMap((row, b) => row.map((x, t) => x * h.mask[b]![t]!))) / Math.max(1, tokens);
  const metrics: Record<string, number> = {};
  if (c.loss_type === "cispo") metrics.cispo_clip_ratio = share(capped);
  else if (c.loss_type !== "sapo") {
    metrics["clip_ratio/low_mean"] = share(low);
    metrics["clip_ratio/high_mean"] = share(high);
    metrics["clip_ratio/region_mean"] = share(low.map((row, b) => row.map((x, t) => x + high[b]![t]!)));
  }
  if (c.beta !== 0) metrics.kl = sum(h.mask.flatMap((row, b) => row.map((m, t) => m * k3(b, t)))) / Math.max(1, tokens);
  return { loss, metrics, grad: grad.flat() };
}

/** Loss, metrics and d loss / d log π from the code under test (compiled, as the trainer runs it). */
async function measure(h: HostBatch, c: GRPOConfig, tokenNormalizer?: number, weights?: number[][]) {
  const fn = compile(
    valueAndGrad(
      (logprobs: Array, oldLogprobs: Array, refLogprobs: Array, advantages: Array, mask: Array, normalizer: Array, importanceWeights: Array) => {
        const inputs: GrpoLossInputs = { logprobs, oldLogprobs, refLogprobs, advantages, mask };
        if (weights) inputs.importanceWeights = importanceWeights;
        else importanceWeights.dispose();
        if (tokenNormalizer === undefined) normalizer.dispose();
        else inputs.tokenNormalizer = normalizer;
        const out = grpoLosses[c.loss_type](inputs, c);
        return [out.loss, out.metrics] as [Array, Record<string, Array>];
      },
      { hasAux: true },
    ),
  );
  const args = [arr(h.logprobs), arr(h.oldLogprobs), arr(h.refLogprobs), arr(h.advantages), arr(h.mask), arr([tokenNormalizer ?? 1]).reshape([]), arr(weights ?? [[1]])] as const;
  const [[loss, metrics], grad] = fn(...args) as unknown as [[Array, Record<string, Array>], Array];
  release([...args]);
  fn.dispose();
  const hostMetrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) hostMetrics[k] = await toNumber(v);
  return { loss: await toNumber(loss), metrics: hostMetrics, grad: [...(await toHost(grad))] };
}

async function check(c: GRPOConfig, tokenNormalizer?: number, weights?: number[][]): Promise<void> {
  const what = `${c.loss_type}/${c.importance_sampling_level}/β=${c.beta}${tokenNormalizer ? `/normalizer ${tokenNormalizer}` : ""}${weights ? `/weights [${weights.length}, ${weights[0]!.length}]` : ""}`;
  const [want, got] = [reference(batch, c, tokenNormalizer, weights), await measure(batch, c, tokenNormalizer, weights)];
  close(got.loss, want.loss, 1e-5, `${what} loss`);
  assert.deepEqual(Object.keys(got.metrics).sort(), Object.keys(want.metrics).sort(), `${what} metric names`);
  for (const [k, v] of Object.entries(want.metrics)) close(got.metrics[k]!, v, 1e-5, `${what} ${k}`);
  allClose(got.grad, want.grad, 1e-5, `${what} gradient`);
}

test("every loss_type at both importance-sampling levels matches the float64 closed form (loss, metrics, gradient)", async () => {
  await initEngine();
  for (const loss_type of LOSS_TYPES) {
    for (const importance_sampling_level of LEVELS) {
      for (const beta of [0, 0.1]) await check(config({ loss_type, importance_sampling_level, beta, epsilon_high: loss_type === "cispo" ? null : 0.28 }));
    }
  }
  // sapo with its own temperatures; dapo and cispo with an accumulated batch's divisor.
  await check(config({ loss_type: "sapo", sapo_temperature_pos: 2, sapo_temperature_neg: 3 }));
  await check(config({ loss_type: "dapo" }), 7.5);
  await check(config({ loss_type: "cispo", importance_sampling_level: "sequence", epsilon_high: 1.4 }), 7.5);
});

// Truncated importance weights of a llama.cpp rollout, min(p_trainer / p_llama.cpp, 2): some at the
// cap, some below 1, on padding too (which the mask must still drop).
const TOKEN_WEIGHTS = [[2, 0.5, 1.25, 2], [0.9, 1.5, 2, 0.75], [1.1, 0.6, 2, 2]];

test("truncated importance weights multiply each token's objective, not the KL: every loss_type at both levels against the closed form", async () => {
  await initEngine();
  for (const loss_type of LOSS_TYPES) {
    for (const importance_sampling_level of LEVELS) {
      for (const beta of [0, 0.1]) await check(config({ loss_type, importance_sampling_level, beta, epsilon_high: loss_type === "cispo" ? null : 0.28 }), undefined, TOKEN_WEIGHTS);
    }
  }
  await check(config({ loss_type: "dapo", beta: 0.1 }), 7.5, TOKEN_WEIGHTS);
  // One weight per completion ([B, 1]) broadcasts over its tokens.
  await check(config({ loss_type: "grpo", importance_sampling_level: "sequence", beta: 0.1 }), undefined, [[2], [0.5], [1.5]]);
  // Weights of 1 change nothing; the weights do change the loss and its gradient.
  const c = config({ loss_type: "dapo", beta: 0.1 });
  const [plain, ones, weighted] = [await measure(batch, c), await measure(batch, c, undefined, TOKEN_WEIGHTS.map((row) => row.map(() => 1))), await measure(batch, c, undefined, TOKEN_WEIGHTS)];
  close(ones.loss, plain.loss, 1e-7);
  allClose(ones.grad, plain.grad, 1e-7, "weights of 1");
  assert.ok(Math.abs(weighted.loss - plain.loss) > 1e-2, "the weights did not reach the loss");
});

test("the batch exercises what it says: the clip branches, cispo's cap and both sapo temperatures are taken", () => {
  const ratios = LOG_RATIOS.map((row) => row.map(Math.exp));
  const m = reference(batch, config({ loss_type: "grpo", epsilon_high: 0.28 })).metrics;
  // low: row 1's 0.7, 0.6, 0.5; high: row 0's 1.5 and 6, of 9 valid tokens. Row 0's 1.25 is not clipped.
  close(m["clip_ratio/low_mean"]!, 3 / 9);
  close(m["clip_ratio/high_mean"]!, 2 / 9);
  close(reference(batch, config({ loss_type: "grpo" })).metrics["clip_ratio/high_mean"]!, 3 / 9); // symmetric ε: 1.25 clipped too
  close(reference(batch, config({ loss_type: "cispo" })).metrics.cispo_clip_ratio!, 1 / 9); // only 6 > 5
  const rows = reference(batch, config({ loss_type: "grpo", importance_sampling_level: "sequence" })).metrics;
  assert.deepEqual([rows["clip_ratio/low_mean"], rows["clip_ratio/high_mean"]], [1 / 3, 1 / 3]);
  assert.ok(ratios[0]![2]! > CISPO_EPSILON_HIGH);
  // sapo: positive and negative advantages, so both temperatures are used.
  assert.ok(batch.advantages.some((a) => a > 0) && batch.advantages.some((a) => a < 0));
});

// Two completions: row 0 has 3 tokens with A = 1, row 1 has 1 token with A = −2. With the old
// log-probs equal to the new ones the ratio is 1, so the clipped objective is −A per token.
const onPolicy = (): GrpoLossInputs => ({
  logprobs: arr([[ln(0.5), ln(0.5), ln(0.5)], [ln(0.5), 0, 0]]),
  oldLogprobs: arr([[ln(0.5), ln(0.5), ln(0.5)], [ln(0.5), 0, 0]]),
  advantages: arr([1, -2]),
  mask: arr([[1, 1, 1], [1, 0, 0]]),
});
const lossOf = async (c: GRPOConfig, inputs = onPolicy()) => (await runLoss((i: GrpoLossInputs) => grpoLosses[c.loss_type](i, c), inputs)).loss;

test("hand values on-policy: the aggregations, cispo's −A·log π and sapo's −2A/τ", async () => {
  await initEngine();
  // per token: row 0 = [−1, −1, −1], row 1 = [2]
  close(await lossOf(config({ loss_type: "grpo" })), 0.5); // mean(−3/3, 2/1)
  close(await lossOf(config({ loss_type: "bnpo" })), -0.25); // (−3 + 2) / 4
  close(await lossOf(config({ loss_type: "dapo" })), -0.25); // the same within one micro-batch
  close(await lossOf(config({ loss_type: "dr_grpo" })), -0.125); // −1 / (2 · 4)
  // cispo at ratio 1: −A·log π per token, log π = ln ½: row 0 gives 3·ln 2, row 1 gives −2·ln 2; / 4 tokens
  close(await lossOf(config({ loss_type: "cispo" })), (3 * ln(2) - 2 * ln(2)) / 4);
  // sapo at ratio 1: σ(0)·4/τ = 2/τ, so −2A/τ per token; τ = 1 for A > 0, 1.05 for A ≤ 0.
  close(await lossOf(config({ loss_type: "sapo" })), (-2 + (2 * 2) / 1.05) / 2);
  // The default loss_type is TRL's dapo, with epsilon_high unset (= epsilon) and token-level ratios.
  assert.deepEqual([defaultGRPOConfig.loss_type, defaultGRPOConfig.epsilon_high, defaultGRPOConfig.importance_sampling_level], ["dapo", null, "token"]);
});

test("epsilon_high: the upper clip for the clipped losses, the ratio cap for cispo (5 when unset)", async () => {
  await initEngine();
  assert.equal(epsilonHigh(config({ loss_type: "dapo" })), 0.2);
  assert.equal(epsilonHigh(config({ loss_type: "dapo", epsilon_high: 0.28 })), 0.28);
  assert.equal(epsilonHigh(config({ loss_type: "cispo" })), CISPO_EPSILON_HIGH);
  // One token, A = 1, ratio 1.25: clipped to 1.2 with ε = 0.2 both sides (−1.2), inside
  // [0.8, 1.28] with epsilon_high 0.28 (−1.25). Ratio 0.7 with A = −1 is clipped low at 0.8 either way.
  const inputs = (): GrpoLossInputs => ({ logprobs: arr([[ln(1.25)], [ln(0.7)]]), oldLogprobs: arr([[0], [0]]), advantages: arr([1, -1]), mask: arr([[1], [1]]) });
  close(await lossOf(config({ loss_type: "dapo" }), inputs()), (-1.2 + 0.8) / 2);
  close(await lossOf(config({ loss_type: "dapo", epsilon_high: 0.28 }), inputs()), (-1.25 + 0.8) / 2);
  // cispo caps the ratio itself: epsilon_high 1.1 turns 1.25 into 1.1 (−1.1·ln 1.25); 0.7 is below the cap.
  close(await lossOf(config({ loss_type: "cispo", epsilon_high: 1.1 }), inputs()), (-1.1 * ln(1.25) + 0.7 * ln(0.7)) / 2);
});

test("dapo and cispo divide by the accumulated batch's tokens: two unequal micro-batches average to the whole batch (bnpo does not)", async () => {
  await initEngine();
  // Rows {0} (3 tokens) and {1, 2} (6 tokens) of the fixed batch; TrainStep averages the two.
  for (const loss_type of ["dapo", "cispo", "bnpo"] as const) {
    const c = config({ loss_type, beta: 0.1, epsilon_high: loss_type === "cispo" ? null : 0.28 });
    const whole = await measure(batch, c);
    const [first, second] = [await measure(part(batch, [0]), c, 9 / 2), await measure(part(batch, [1, 2]), c, 9 / 2)];
    const accumulated = { loss: (first.loss + second.loss) / 2, grad: [...first.grad, ...second.grad].map((g) => g / 2) };
    if (loss_type === "bnpo") {
      // bnpo's own per-micro-batch mean ignores the divisor: each half weighs the same, not each token.
      const perHalf = [await measure(part(batch, [0]), c), await measure(part(batch, [1, 2]), c)];
      assert.ok(Math.abs((perHalf[0]!.loss + perHalf[1]!.loss) / 2 - whole.loss) > 1e-3, "bnpo should differ from the whole-batch mean");
      continue;
    }
    close(accumulated.loss, whole.loss, 1e-5, `${loss_type} loss`);
    allClose(accumulated.grad, whole.grad, 1e-5, `${loss_type} gradient`);
  }
});

test("a completion whose mask is zeroed (mask_truncated_completions) carries no gradient and changes no loss but grpo's count", async () => {
  await initEngine();
  const truncated: HostBatch = { ...batch, mask: [batch.mask[0]!, [0, 0, 0, 0], batch.mask[2]!] };
  // Whatever row 1's log-probs are, the loss is the same and its gradient is zero.
  const other: HostBatch = { ...truncated, logprobs: [batch.logprobs[0]!, [-3, -2, -1, -4], batch.logprobs[2]!], oldLogprobs: [batch.oldLogprobs[0]!, [-1, -1, -1, -1], batch.oldLogprobs[2]!] };
  for (const loss_type of LOSS_TYPES) {
    for (const importance_sampling_level of LEVELS) {
      const c = config({ loss_type, importance_sampling_level, beta: 0.1 });
      const [a, b] = [await measure(truncated, c), await measure(other, c)];
      close(a.loss, b.loss, 1e-6, `${loss_type}/${importance_sampling_level}`);
      allClose(a.grad.slice(4, 8), [0, 0, 0, 0], 0, `${loss_type}/${importance_sampling_level} row 1 gradient`);
      close(a.loss, reference(truncated, c).loss, 1e-5);
    }
  }
  // grpo (and sapo) still divide by all 3 completions (TRL's mean over rows, an empty row counting 0);
  // bnpo's token mean does not count the row at all.
  for (const loss_type of ["grpo", "sapo", "bnpo"] as const) {
    const c = config({ loss_type });
    const [withRow, without] = [await measure(truncated, c), await measure(part(batch, [0, 2]), c)];
    close(withRow.loss, loss_type === "bnpo" ? without.loss : (without.loss * 2) / 3, 1e-5, loss_type);
  }
});

test("on-policy (old log-probs under stopGradient) the gradient is −A / (n_tokens · B) per token for grpo and sapo", async () => {
  await initEngine();
  for (const loss_type of ["grpo", "sapo"] as const) {
    const c = config({ loss_type });
    const vg = compile(valueAndGrad((logprobs: Array, advantages: Array, mask: Array) => grpoLosses[loss_type]({ logprobs: logprobs.ref, oldLogprobs: lax.stopGradient(logprobs), advantages, mask }, c).loss));
    const { logprobs, advantages, mask, oldLogprobs } = onPolicy();
    const [loss, grad] = vg(logprobs, advantages, mask) as unknown as [Array, Array];
    await toNumber(loss);
    // row 0: −1 / (3·2) on each token; row 1: 2 / (1·2) = 1 on its one token (sapo's gate has slope 1 at ratio 1)
    allClose(await toHost(grad), [-1 / 6, -1 / 6, -1 / 6, 1, 0, 0], 1e-6, loss_type);
    release([logprobs, advantages, mask, oldLogprobs]);
    vg.dispose();
  }
});
