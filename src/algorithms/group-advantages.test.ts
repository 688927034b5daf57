import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, lax, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, release, toHost, toNumber } from "../engine/arrays.ts";
import { defaultGRPOConfig, drGrpoLoss, grpoAdvantages, grpoLoss, grpoLosses, grpoTokenMeanLoss, normalizeAdvantages, rlooAdvantages, rlooLoss, type GrpoLossInputs } from "./group-advantages.ts";
import { allClose, arr, close, runLoss } from "./test-helpers.ts";

const ln = Math.log;

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

// Two completions: row 0 has 3 tokens with A = 1, row 1 has 1 token with A = −2. With the
// old log-probs equal to the new ones the ratio is 1, so the per-token loss is −A (+ β·k3).
const onPolicy = (withRef: boolean): GrpoLossInputs => ({
  logprobs: arr([[ln(0.5), ln(0.5), ln(0.5)], [ln(0.5), 0, 0]]),
  oldLogprobs: arr([[ln(0.5), ln(0.5), ln(0.5)], [ln(0.5), 0, 0]]),
  // (no key at all without a reference: jax-js trees reject `undefined` leaves)
  ...(withRef ? { refLogprobs: arr([[ln(0.25), ln(0.25), ln(0.25)], [ln(0.25), 0, 0]]) } : {}),
  advantages: arr([1, -2]),
  mask: arr([[1, 1, 1], [1, 0, 0]]),
});

test("the three aggregations differ exactly as documented", async () => {
  await initEngine();
  const opts = { epsilon: 0.2, beta: 0 };
  // per token: row 0 = [−1, −1, −1], row 1 = [2]
  close((await runLoss((i: GrpoLossInputs) => grpoLoss(i, opts), onPolicy(false))).loss, 0.5); // mean(−3/3, 2/1)
  close((await runLoss((i: GrpoLossInputs) => grpoTokenMeanLoss(i, opts), onPolicy(false))).loss, -0.25); // (−3 + 2) / 4
  close((await runLoss((i: GrpoLossInputs) => drGrpoLoss(i, { ...opts, maxCompletionLength: 4 }), onPolicy(false))).loss, -0.125); // −1 / (2·4)
  // the default loss_type is TRL's "dapo", the token mean
  const config = { ...defaultGRPOConfig };
  assert.equal(config.loss_type, "dapo");
  close((await runLoss((i: GrpoLossInputs) => grpoLosses[config.loss_type](i, config), onPolicy(false))).loss, -0.25);
});

test("β·k3 to the reference is added per token", async () => {
  await initEngine();
  // k3 at p = 0.5, p_ref = 0.25 is 0.193147 on every token; β = 0.1 adds 0.0193147
  const out = await runLoss((i: GrpoLossInputs) => grpoLoss(i, { epsilon: 0.2, beta: 0.1 }), onPolicy(true));
  close(out.loss, 0.5193147);
  close(out.metrics.kl!, 0.193147);
  const tokenMean = await runLoss((i: GrpoLossInputs) => grpoTokenMeanLoss(i, { epsilon: 0.2, beta: 0.1 }), onPolicy(true));
  close(tokenMean.loss, -0.2306853);
});

test("clipping and its metrics, off-policy", async () => {
  await initEngine();
  // ratios [1.5, 0.5 | 0.5, 1.5]; A = [1 | −1]:
  //   row 0: ratio 1.5, A>0 → high-clipped, loss −1.2; ratio 0.5, A>0 → −0.5 (not clipped)
  //   row 1: ratio 0.5, A<0 → low-clipped, loss 0.8;   ratio 1.5, A<0 → 1.5 (not clipped)
  const inputs = (): GrpoLossInputs => ({
    logprobs: arr([[ln(1.5), ln(0.5)], [ln(0.5), ln(1.5)]]),
    oldLogprobs: arr([[0, 0], [0, 0]]),
    advantages: arr([1, -1]),
    mask: arr([[1, 1], [1, 1]]),
  });
  const out = await runLoss((i: GrpoLossInputs) => grpoTokenMeanLoss(i, { epsilon: 0.2, beta: 0 }), inputs());
  close(out.loss, 0.15); // (−1.2 − 0.5 + 0.8 + 1.5) / 4
  close(out.metrics["clip_ratio/high_mean"]!, 0.25);
  close(out.metrics["clip_ratio/low_mean"]!, 0.25);
  close(out.metrics["clip_ratio/region_mean"]!, 0.5);
  assert.ok(!("kl" in out.metrics), "no kl metric without a KL term");
});

test("on-policy gradient (old log-probs under stopGradient) is −A / (n_tokens · B) per token", async () => {
  await initEngine();
  const vg = compile(
    valueAndGrad((logprobs: Array, advantages: Array, mask: Array) =>
      grpoLoss({ logprobs: logprobs.ref, oldLogprobs: lax.stopGradient(logprobs), advantages, mask }, { epsilon: 0.2, beta: 0 }).loss,
    ),
  );
  const { logprobs, advantages, mask } = onPolicy(false);
  const [loss, grad] = vg(logprobs, advantages, mask) as unknown as [Array, Array];
  close(await toNumber(loss), 0.5);
  // row 0: −1 / (3·2) = −0.166667 on each token; row 1: 2 / (1·2) = 1 on its one token
  allClose(await toHost(grad), [-1 / 6, -1 / 6, -1 / 6, 1, 0, 0]);
  release([logprobs, advantages, mask]);
  vg.dispose();
});

test("RLOO's advantages normalised over the batch: mean 0, Bessel std, + 1e-4", () => {
  const s = Math.sqrt(14 / 3) + 1e-4; // [1, 2, 3, 6]: mean 3, std 2.160247
  allClose(normalizeAdvantages([1, 2, 3, 6]), [-2 / s, -1 / s, 0, 3 / s]);
});

test("RLOO's loss clips one ratio per completion, from the summed log-probs; padding is ignored", async () => {
  await initEngine();
  // On-policy the ratio is 1: loss = mean(−A) = mean(−1, 2) = 0.5, nothing clipped.
  const onPolicyOut = await runLoss((i: GrpoLossInputs) => rlooLoss(i, { epsilon: 0.2 }), onPolicy(true));
  close(onPolicyOut.loss, 0.5);
  close(onPolicyOut.metrics["clip_ratio/region_mean"]!, 0);
  assert.ok(!("kl" in onPolicyOut.metrics), "the KL is in RLOO's reward, not its loss");
  // Row 0: log-ratios ln 1.5 + 0 → r = 1.5 with A = 1: clipped high, −1.2.
  // Row 1: ln 0.5 + ln 1.5 → r = 0.75 with A = −1: clipped low, min(−0.75, −0.8) → 0.8. The third
  // token (ratio 10) is padding. A per-token objective would clip each token instead.
  const out = await runLoss((i: GrpoLossInputs) => rlooLoss(i, { epsilon: 0.2 }), {
    logprobs: arr([[ln(1.5), 0, 0], [ln(0.5), ln(1.5), ln(10)]]),
    oldLogprobs: arr([[0, 0, 0], [0, 0, 0]]),
    advantages: arr([1, -1]),
    mask: arr([[1, 1, 0], [1, 1, 0]]),
  });
  close(out.loss, -0.2); // (−1.2 + 0.8) / 2
  close(out.metrics["clip_ratio/high_mean"]!, 0.5);
  close(out.metrics["clip_ratio/low_mean"]!, 0.5);
  close(out.metrics["clip_ratio/region_mean"]!, 1);
});

test("RLOO's on-policy gradient is −A / B on every valid token of a completion", async () => {
  await initEngine();
  const vg = compile(
    valueAndGrad((logprobs: Array, advantages: Array, mask: Array) =>
      rlooLoss({ logprobs: logprobs.ref, oldLogprobs: lax.stopGradient(logprobs), advantages, mask }, { epsilon: 0.2 }).loss,
    ),
  );
  const { logprobs, advantages, mask } = onPolicy(false);
  const [loss, grad] = vg(logprobs, advantages, mask) as unknown as [Array, Array];
  close(await toNumber(loss), 0.5);
  // A = [1, −2], B = 2: row 0 gets −0.5 on each of its 3 tokens (not divided by its length, as
  // GRPO's per-token mean would), row 1 gets 1 on its one token, padding 0.
  allClose(await toHost(grad), [-0.5, -0.5, -0.5, 1, 0, 0]);
  release([logprobs, advantages, mask]);
  vg.dispose();
});
