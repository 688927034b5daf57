import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, release, toHost, toNumber } from "../engine/arrays.ts";
import {
  defaultPPOConfig, gae, ppoAdvantages, ppoLoss, ppoPolicyLoss, ppoRewards, ppoRolloutMetrics, ppoValueLoss,
  type PpoPolicyInputs, type PpoValueInputs,
} from "./ppo.ts";
import { maskedMeanHost, maskedVarHost } from "./sequence.ts";
import { allClose, arr, close, runLoss } from "./test-helpers.ts";

const ln = Math.log;

test("GAE over a 3-token episode with γ = 0.9, λ = 0.8", () => {
  const { advantages, returns } = gae([[0, 0, 1, 7]], [[0.5, 0.6, 0.7, 9]], [[1, 1, 1, 0]], 0.9, 0.8);
  // t=2: δ = 1 + 0.9·0 − 0.7 = 0.3                A = 0.3
  // t=1: δ = 0 + 0.9·0.7 − 0.6 = 0.03             A = 0.03 + 0.72·0.3 = 0.246
  // t=0: δ = 0 + 0.9·0.6 − 0.5 = 0.04             A = 0.04 + 0.72·0.246 = 0.21712
  // padding: A = R = 0 whatever its reward and value
  allClose(advantages[0]!, [0.21712, 0.246, 0.3, 0]);
  allClose(returns[0]!, [0.71712, 0.846, 1.0, 0]); // A + V
});

test("GAE with γ = λ = 1 gives reward-to-go minus value", () => {
  const { advantages, returns } = gae([[1, 2, 3]], [[0.5, 0.5, 0.5]], [[1, 1, 1]], 1, 1);
  allClose(returns[0]!, [6, 5, 3]);
  allClose(advantages[0]!, [5.5, 4.5, 2.5]);
  assert.throws(() => gae([[1, 2]], [[0, 0]], [[0, 1]], 1, 1), /prefix/);
});

test("per-token rewards: KL penalty everywhere, score (with missing-EOS penalty) at the last token", () => {
  const logprobs = [[-1, -2, -3], [-1, -1, -7]];
  const refLogprobs = [[-1.5, -2, -2], [-1, -2, -7]];
  const mask = [[1, 1, 1], [1, 1, 0]];
  const config = { kl_coef: 0.1, kl_estimator: "k1" as const, missing_eos_penalty: 0.5 };
  const r = ppoRewards({ logprobs, refLogprobs, mask, scores: [2, 1], containsEos: [true, false] }, config);
  // row 0: k1 = [0.5, 0, −1] → −0.1·k1 = [−0.05, 0, 0.1], score 2 on t=2 → [−0.05, 0, 2.1]
  // row 1: k1 = [0, 1, pad] → [0, −0.1, 0]; no EOS: score 1 − 0.5 = 0.5 on t=1 → [0, 0.4, 0]
  allClose(r.rewards[0]!, [-0.05, 0, 2.1]);
  allClose(r.rewards[1]!, [0, 0.4, 0]);
  allClose(r.kl.flat(), [0.5, 0, -1, 0, 1, 0]);
  assert.deepEqual(r.scores, [2, 0.5]);
  const k3 = ppoRewards({ logprobs: [[ln(0.5)]], refLogprobs: [[ln(0.25)]], mask: [[1]], scores: [0] }, { ...config, kl_estimator: "k3", missing_eos_penalty: null });
  close(k3.kl[0]![0]!, 0.193147); // (0.5 − 1) − ln 0.5

  const entropy = [[0.5, 1, 2], [3, 0.25, 9]];
  const m = ppoRolloutMetrics(r, entropy, mask, [true, false]);
  close(m["objective/kl"]!, 0.25); // row sums 0.5 + 0 − 1 = −0.5 and 1, mean 0.25
  close(m["objective/non_score_reward"]!, -0.025); // −0.1 · 0.25
  close(m["objective/scores"]!, 1.25); // (2 + 0.5) / 2
  close(m["objective/rlhf_reward"]!, 1.225);
  close(m["objective/entropy"]!, 3.375); // mean(0.5 + 1 + 2, 3 + 0.25): the padded 9 is not counted
  assert.equal(m["val/num_eos_tokens"], 1);
});

test("advantages come out whitened over the valid tokens; returns are GAE's", () => {
  const rewards = [[0, 0, 1], [0, 2, 0]];
  const values = [[0.1, 0.2, 0.3], [0.4, 0.5, 0]];
  const mask = [[1, 1, 1], [1, 1, 0]];
  const { advantages, returns } = ppoAdvantages(rewards, values, mask, defaultPPOConfig);
  close(maskedMeanHost(advantages, mask), 0, 1e-9);
  close(maskedVarHost(advantages, mask), 1, 1e-6);
  assert.equal(advantages[1]![2], 0);
  assert.deepEqual(returns, gae(rewards, values, mask, 1, 0.95).returns);
});

// Policy-loss cases, ε = 0.2 (one token each; row 1's last token is padding with wild values):
//   a) A=+1, ratio 1.5: max(−1.5, −1.2) = −1.2  clipped
//   b) A=+1, ratio 0.5: max(−0.5, −0.8) = −0.5
//   c) A=−1, ratio 1.5: max( 1.5,  1.2) =  1.5
//   d) A=−1, ratio 0.5: max( 0.5,  0.8) =  0.8  clipped
//   e) A=+1, ratio 1.1: max(−1.1, −1.1) = −1.1
const policyCase = (): PpoPolicyInputs => ({
  logprobs: arr([[ln(1.5), ln(0.5), ln(1.5)], [ln(0.5), ln(1.1), 5]]),
  oldLogprobs: arr([[0, 0, 0], [0, 0, 0]]),
  advantages: arr([[1, 1, -1], [-1, 1, 100]]),
  mask: arr([[1, 1, 1], [1, 1, 0]]),
});

test("clipped policy loss on both sides of 1 ± ε, with positive and negative advantages", async () => {
  await initEngine();
  const out = await runLoss((i: PpoPolicyInputs) => ppoPolicyLoss(i, 0.2), policyCase());
  close(out.loss, -0.1); // (−1.2 − 0.5 + 1.5 + 0.8 − 1.1) / 5
  close(out.metrics["loss/policy_avg"]!, -0.1);
  close(out.metrics["policy/clipfrac_avg"]!, 0.4); // a and d
  // ½ mean(log ratio)²: ln² 1.5 = 0.164402, ln² 0.5 = 0.480453, ln² 1.1 = 0.009084
  // (2·0.164402 + 2·0.480453 + 0.009084) / 5 / 2 = 0.129879
  close(out.metrics["policy/approxkl_avg"]!, 0.129879);
  close(out.metrics["val/ratio"]!, 1.02); // (1.5 + 0.5 + 1.5 + 0.5 + 1.1) / 5
});

test("the policy gradient flows only through unclipped tokens", async () => {
  await initEngine();
  const vg = compile(valueAndGrad((logprobs: Array, rest: Omit<PpoPolicyInputs, "logprobs">) => ppoPolicyLoss({ logprobs, ...rest }, 0.2).loss));
  const { logprobs, ...rest } = policyCase();
  const [loss, grad] = vg(logprobs, rest) as unknown as [Array, Array];
  close(await toNumber(loss), -0.1);
  // d/dlogp of −A·ratio/5 is −A·ratio/5 where unclipped, 0 where the clipped term wins:
  // a) 0  b) −0.5/5 = −0.1  c) 1.5/5 = 0.3  d) 0  e) −1.1/5 = −0.22  padding 0
  allClose(await toHost(grad), [0, -0.1, 0.3, 0, -0.22, 0]);
  release([logprobs, rest]);
  vg.dispose();
});

test("truncated importance sampling weighs each token's clipped term, and its gradient, by its weight", async () => {
  await initEngine();
  // Weights 2, 0.5, 1 / 1.5, 1 (the padding's 3 is masked): the terms above become
  // a) 2·(−1.2) = −2.4  b) 0.5·(−0.5) = −0.25  c) 1.5  d) 1.5·0.8 = 1.2  e) −1.1; mean −1.05 / 5 = −0.21.
  const weighted = (): PpoPolicyInputs => ({ ...policyCase(), importanceWeights: arr([[2, 0.5, 1], [1.5, 1, 3]]) });
  const out = await runLoss((i: PpoPolicyInputs) => ppoPolicyLoss(i, 0.2), weighted());
  close(out.loss, -0.21);
  close(out.metrics["loss/policy_avg"]!, -0.21);
  close(out.metrics["policy/clipfrac_avg"]!, 0.4); // what is clipped does not depend on the weights
  const vg = compile(valueAndGrad((logprobs: Array, rest: Omit<PpoPolicyInputs, "logprobs">) => ppoPolicyLoss({ logprobs, ...rest }, 0.2).loss));
  const { logprobs, ...rest } = weighted();
  const [loss, grad] = vg(logprobs, rest) as unknown as [Array, Array];
  close(await toNumber(loss), -0.21);
  // −w·A·ratio / 5 where unclipped: b) −0.5·0.5/5 = −0.05  c) 0.3  e) −0.22
  allClose(await toHost(grad), [0, -0.05, 0.3, 0, -0.22, 0]);
  release([logprobs, rest]);
  vg.dispose();
});

// Value-loss cases, ε_v = 0.2:
//   v=1.5, v_old=1, R=2: (−0.5)² = 0.25 vs clip → 1.2: (−0.8)² = 0.64 → 0.64  clipped
//   v=0.9, v_old=1, R=2: inside the range, both 1.21 → 1.21
//   v=0.5, v_old=1, R=0: 0.25 vs clip → 0.8: 0.64 → 0.64  clipped
//   v=3,   v_old=1, R=2: 1 vs clip → 1.2: 0.64 → 1
const valueCase = (): PpoValueInputs => ({
  values: arr([[1.5, 0.9], [0.5, 3]]),
  oldValues: arr([[1, 1], [1, 1]]),
  returns: arr([[2, 2], [0, 2]]),
  mask: arr([[1, 1], [1, 1]]),
});

test("clipped value loss", async () => {
  await initEngine();
  const out = await runLoss((i: PpoValueInputs) => ppoValueLoss(i, 0.2), valueCase());
  close(out.loss, 0.43625); // ½ · (0.64 + 1.21 + 0.64 + 1) / 4
  close(out.metrics["loss/value_avg"]!, 0.43625);
  close(out.metrics["val/clipfrac_avg"]!, 0.5);
});

test("total PPO loss is policy + vf_coef · value", async () => {
  await initEngine();
  const p = policyCase();
  const out = await runLoss(
    (i: Parameters<typeof ppoLoss>[0]) => ppoLoss(i, defaultPPOConfig),
    { ...p, values: arr([[1.5, 0.9, 0.5], [3, 0, 0]]), oldValues: arr([[1, 1, 1], [1, 0, 0]]), returns: arr([[2, 2, 0], [2, 0, 0]]) },
  );
  // value part over the 5 valid tokens: ½ · (0.64 + 1.21 + 0.64 + 1 + 0) / 5 = 0.349
  close(out.metrics["loss/value_avg"]!, 0.349);
  close(out.loss, -0.1 + 0.1 * 0.349);
  assert.ok("policy/clipfrac_avg" in out.metrics && "val/clipfrac_avg" in out.metrics);
});
