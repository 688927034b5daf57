import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, release, toHost, toNumber } from "../engine/arrays.ts";
import { dpoHingeLoss, dpoIpoLoss, dpoLosses, dpoRobustLoss, dpoSigmoidLoss, type DpoLogps } from "./dpo.ts";
import { allClose, arr, close, runLoss } from "./test-helpers.ts";

const logpsOf = (pc: number[], pr: number[], rc: number[], rr: number[]): DpoLogps => ({
  policyChosen: arr(pc),
  policyRejected: arr(pr),
  refChosen: arr(rc),
  refRejected: arr(rr),
});
// One pair with h = (−10 − (−12)) − (−11 − (−11)) = 2; with β = 0.1, βh = 0.2.
const pairH2 = () => logpsOf([-10], [-12], [-11], [-11]);
// softplus(x) = ln(1 + eˣ): softplus(−0.2) = ln 1.818731 = 0.598139, softplus(0.2) = 0.798139

test("sigmoid loss at h = 0 is ln 2", async () => {
  await initEngine();
  const out = await runLoss((l: DpoLogps) => dpoSigmoidLoss(l, 0.1), logpsOf([-5, -7], [-6, -8], [-5, -7], [-6, -8]));
  close(out.loss, Math.LN2);
  close(out.metrics["rewards/margins"]!, 0);
  close(out.metrics["rewards/accuracies"]!, 0, 0, "equal rewards are not accurate");
});

test("sigmoid loss, with and without label smoothing, and the metrics", async () => {
  await initEngine();
  const plain = await runLoss((l: DpoLogps) => dpoSigmoidLoss(l, 0.1), pairH2());
  close(plain.loss, 0.598139); // −log σ(0.2) = softplus(−0.2)
  const m = plain.metrics;
  close(m["rewards/chosen"]!, 0.1); // β(π_c − ref_c) = 0.1 · (−10 + 11)
  close(m["rewards/rejected"]!, -0.1); // 0.1 · (−12 + 11)
  close(m["rewards/margins"]!, 0.2);
  close(m["rewards/accuracies"]!, 1);
  close(m["logps/chosen"]!, -10);
  close(m["logps/rejected"]!, -12);
  // ε = 0.1: 0.9 · softplus(−0.2) + 0.1 · softplus(0.2) = 0.538325 + 0.079814 = 0.618139
  const smoothed = await runLoss((l: DpoLogps) => dpoSigmoidLoss(l, 0.1, 0.1), pairH2());
  close(smoothed.loss, 0.618139);
});

test("robust loss", async () => {
  await initEngine();
  // (0.9 · softplus(−0.2) − 0.1 · softplus(0.2)) / 0.8 = (0.538325 − 0.079814) / 0.8 = 0.573139
  const out = await runLoss((l: DpoLogps) => dpoRobustLoss(l, 0.1, 0.1), pairH2());
  close(out.loss, 0.573139);
  // ε = 0 is plain DPO
  close((await runLoss((l: DpoLogps) => dpoRobustLoss(l, 0.1, 0), pairH2())).loss, 0.598139);
  assert.throws(() => dpoRobustLoss(pairH2(), 0.1, 0.5), /label_smoothing/);
});

test("hinge loss on both sides of the margin", async () => {
  await initEngine();
  close((await runLoss((l: DpoLogps) => dpoHingeLoss(l, 0.1), pairH2())).loss, 0.8); // relu(1 − 0.2)
  close((await runLoss((l: DpoLogps) => dpoHingeLoss(l, 1), pairH2())).loss, 0); // relu(1 − 2)
  // batch: h = [2, −1] with β = 1 → relu(−1) = 0 and relu(2) = 2, mean 1
  close((await runLoss((l: DpoLogps) => dpoHingeLoss(l, 1), logpsOf([-10, -3], [-12, -2], [-11, -2], [-11, -2]))).loss, 1);
});

test("IPO loss regresses h to 1/(2β)", async () => {
  await initEngine();
  close((await runLoss((l: DpoLogps) => dpoIpoLoss(l, 0.1), pairH2())).loss, 9); // (2 − 5)²
  close((await runLoss((l: DpoLogps) => dpoIpoLoss(l, 0.25), pairH2())).loss, 0); // (2 − 2)²
});

test("each loss_type picks its own variant and passes it the config's beta and label_smoothing", async () => {
  await initEngine();
  // h = 2, β = 0.1, ε = 0.1: the hand values of the tests above, different for every variant.
  const config = { beta: 0.1, label_smoothing: 0.1 };
  const expected = { sigmoid: 0.618139, robust: 0.573139, hinge: 0.8, ipo: 9 } as const;
  for (const type of Object.keys(expected) as (keyof typeof expected)[]) {
    close((await runLoss((l: DpoLogps) => dpoLosses[type](l, config), pairH2())).loss, expected[type], 1e-5, type);
  }
});

test("gradient of the sigmoid loss w.r.t. the policy log-probs is ∓β·σ(−βh)", async () => {
  await initEngine();
  const vg = compile(
    valueAndGrad((pc: Array, pr: Array, rc: Array, rr: Array) =>
      dpoSigmoidLoss({ policyChosen: pc, policyRejected: pr, refChosen: rc, refRejected: rr }, 0.1).loss,
    ),
  );
  const vgRejected = compile(
    valueAndGrad((pr: Array, pc: Array, rc: Array, rr: Array) =>
      dpoSigmoidLoss({ policyChosen: pc, policyRejected: pr, refChosen: rc, refRejected: rr }, 0.1).loss,
    ),
  );
  const inputs = [arr([-10]), arr([-12]), arr([-11]), arr([-11])] as const;
  const [loss, gradChosen] = vg(...inputs) as unknown as [Array, Array];
  const [loss2, gradRejected] = vgRejected(inputs[1], inputs[0], inputs[2], inputs[3]) as unknown as [Array, Array];
  close(await toNumber(loss), 0.598139);
  close(await toNumber(loss2), 0.598139);
  // −β σ(−βh) = −0.1 · σ(−0.2) = −0.1 · 0.450166 = −0.0450166, and the opposite for rejected
  allClose(await toHost(gradChosen), [-0.0450166]);
  allClose(await toHost(gradRejected), [0.0450166]);
  release(inputs);
  vg.dispose();
  vgRejected.dispose();
});
