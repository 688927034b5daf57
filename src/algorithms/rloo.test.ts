import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, lax, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, release, toHost, toNumber } from "../engine/arrays.ts";
import type { GrpoLossInputs } from "./grpo.ts";
import { rlooLoss } from "./rloo.ts";
import { allClose, arr, close, runLoss } from "./test-helpers.ts";

const ln = Math.log;
const symmetric = { epsilon: 0.2, epsilonHigh: 0.2 };

// Row 0: 3 tokens with A = 1; row 1: 1 token with A = −2; old log-probs equal the new ones.
const onPolicy = (): GrpoLossInputs => ({
  logprobs: arr([[ln(0.5), ln(0.5), ln(0.5)], [ln(0.5), 0, 0]]),
  oldLogprobs: arr([[ln(0.5), ln(0.5), ln(0.5)], [ln(0.5), 0, 0]]),
  refLogprobs: arr([[ln(0.25), ln(0.25), ln(0.25)], [ln(0.25), 0, 0]]),
  advantages: arr([1, -2]),
  mask: arr([[1, 1, 1], [1, 0, 0]]),
});

test("RLOO's loss clips one ratio per completion, from the summed log-probs; padding is ignored", async () => {
  await initEngine();
  // On-policy the ratio is 1: loss = mean(−A) = mean(−1, 2) = 0.5, nothing clipped.
  const onPolicyOut = await runLoss((i: GrpoLossInputs) => rlooLoss(i, symmetric), onPolicy());
  close(onPolicyOut.loss, 0.5);
  close(onPolicyOut.metrics["clip_ratio/region_mean"]!, 0);
  assert.ok(!("kl" in onPolicyOut.metrics), "the KL is in RLOO's reward, not its loss");
  // Row 0: log-ratios ln 1.5 + 0 → r = 1.5 with A = 1: clipped high, −1.2.
  // Row 1: ln 0.5 + ln 1.5 → r = 0.75 with A = −1: clipped low, min(−0.75, −0.8) → 0.8. The third
  // token (ratio 10) is padding. A per-token objective would clip each token instead.
  const offPolicy = (): GrpoLossInputs => ({
    logprobs: arr([[ln(1.5), 0, 0], [ln(0.5), ln(1.5), ln(10)]]),
    oldLogprobs: arr([[0, 0, 0], [0, 0, 0]]),
    advantages: arr([1, -1]),
    mask: arr([[1, 1, 0], [1, 1, 0]]),
  });
  const out = await runLoss((i: GrpoLossInputs) => rlooLoss(i, symmetric), offPolicy());
  close(out.loss, -0.2); // (−1.2 + 0.8) / 2
  close(out.metrics["clip_ratio/high_mean"]!, 0.5);
  close(out.metrics["clip_ratio/low_mean"]!, 0.5);
  close(out.metrics["clip_ratio/region_mean"]!, 1);
  // epsilon_high 0.6 moves only the upper bound: row 0's 1.5 is inside [0.8, 1.6] now (−1.5),
  // row 1 is clipped low as before (0.8).
  const higher = await runLoss((i: GrpoLossInputs) => rlooLoss(i, { epsilon: 0.2, epsilonHigh: 0.6 }), offPolicy());
  close(higher.loss, -0.35); // (−1.5 + 0.8) / 2
  close(higher.metrics["clip_ratio/high_mean"]!, 0);
  close(higher.metrics["clip_ratio/low_mean"]!, 0.5);
});

test("RLOO's on-policy gradient is −A / B on every valid token; a masked-out (truncated) completion gets none but counts in B", async () => {
  await initEngine();
  const vg = compile(
    valueAndGrad((logprobs: Array, advantages: Array, mask: Array) =>
      rlooLoss({ logprobs: logprobs.ref, oldLogprobs: lax.stopGradient(logprobs), advantages, mask }, symmetric).loss,
    ),
  );
  const { logprobs, advantages, mask, oldLogprobs, refLogprobs } = onPolicy();
  release([oldLogprobs, refLogprobs!]);
  const [loss, grad] = vg(logprobs, advantages, mask) as unknown as [Array, Array];
  close(await toNumber(loss), 0.5);
  // A = [1, −2], B = 2: row 0 gets −0.5 on each of its 3 tokens (not divided by its length, as
  // GRPO's per-token mean would), row 1 gets 1 on its one token, padding 0.
  allClose(await toHost(grad), [-0.5, -0.5, -0.5, 1, 0, 0]);
  // Row 1 truncated (mask zeroed): its ratio is 1, its term −A = 2 stays in the mean over both
  // completions (as TRL's), but carries no gradient.
  const truncated = arr([[1, 1, 1], [0, 0, 0]]);
  const [maskedLoss, maskedGrad] = vg(logprobs, advantages, truncated) as unknown as [Array, Array];
  close(await toNumber(maskedLoss), 0.5);
  allClose(await toHost(maskedGrad), [-0.5, -0.5, -0.5, 0, 0, 0]);
  release([logprobs, advantages, mask, truncated]);
  vg.dispose();
});

test("RLOO with truncated importance weights (a llama.cpp rollout): each completion's term, and its gradient, is scaled by its weight", async () => {
  await initEngine();
  const vg = compile(
    valueAndGrad((logprobs: Array, oldLogprobs: Array, advantages: Array, mask: Array, importanceWeights: Array) =>
      rlooLoss({ logprobs, oldLogprobs, advantages, mask, importanceWeights }, symmetric).loss,
    ),
  );
  // The off-policy case above: terms −1.2 (row 0, clipped high: no gradient) and 0.8 (row 1,
  // clipped low: no gradient); on-policy rows instead get −A·w/B on each valid token.
  const offPolicy = [arr([[ln(1.5), 0, 0], [ln(0.5), ln(1.5), ln(10)]]), arr([[0, 0, 0], [0, 0, 0]]), arr([1, -1]), arr([[1, 1, 0], [1, 1, 0]]), arr([[0.5], [2]])] as const;
  const [loss, grad] = vg(...offPolicy) as unknown as [Array, Array];
  close(await toNumber(loss), (-1.2 * 0.5 + 0.8 * 2) / 2);
  allClose(await toHost(grad), [0, 0, 0, 0, 0, 0]);
  const same = [[ln(0.5), ln(0.5), ln(0.5)], [ln(0.5), 0, 0]];
  const onPolicy = [arr(same), arr(same), arr([1, -2]), arr([[1, 1, 1], [1, 0, 0]]), arr([[1.5], [0.25]])] as const;
  const [onLoss, onGrad] = vg(...onPolicy) as unknown as [Array, Array];
  close(await toNumber(onLoss), (-1 * 1.5 + 2 * 0.25) / 2);
  allClose(await toHost(onGrad), [-0.75, -0.75, -0.75, 0.25, 0, 0]);
  release([...offPolicy, ...onPolicy]);
  vg.dispose();
});
