// The KTO losses against their closed forms in float64: the reference point z₀ (mean KL of the
// mismatched completions, clamped at 0), desirable/undesirable weighting, TRL's sums and counts,
// APO-zero, and the gradient, which must not flow through z₀.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, release, toHost, toNumber } from "../engine/arrays.ts";
import { apoZeroUnpairedLoss, defaultKTOConfig, ktoLoss, ktoLosses, type KtoLogps } from "./kto.ts";
import { allClose, arr, close, runLoss } from "./test-helpers.ts";

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

// Two desirable and two undesirable completions, r = π − ref = [2, −1, 0.5, −3]; the mismatched
// completions' π − ref = [1, 0.5, 0, 1], so z₀ = 0.625.
const batch = {
  policy: [-9, -12, -8.5, -17],
  reference: [-11, -11, -9, -14],
  labels: [1, 0, 1, 0],
  policyKl: [-20, -18, -22, -16],
  referenceKl: [-21, -18.5, -22, -17],
};
type HostBatch = typeof batch;
const device = (b: HostBatch): KtoLogps => ({ policy: arr(b.policy), reference: arr(b.reference), labels: arr(b.labels), policyKl: arr(b.policyKl), referenceKl: arr(b.referenceKl) });

/** The paper's eq. 7 with TRL's weights, in float64. */
function expectedKto(b: HostBatch, beta: number, dw = 1, uw = 1): { loss: number; kl: number } {
  const kl = Math.max(0, mean(b.policyKl.map((p, i) => p - b.referenceKl[i]!)));
  const losses = b.policy.map((p, i) => {
    const r = p - b.reference[i]!;
    return b.labels[i] ? dw * (1 - sigmoid(beta * (r - kl))) : uw * (1 - sigmoid(beta * (kl - r)));
  });
  return { loss: mean(losses), kl };
}

test("KTO loss, reference point and TRL's sums and counts against the closed form", async () => {
  await initEngine();
  const out = await runLoss((l: KtoLogps) => ktoLoss(l, 0.1, defaultKTOConfig), device(batch));
  const expected = expectedKto(batch, 0.1);
  close(expected.loss, 0.4596556744511766, 1e-12, "the float64 closed form (numpy gives the same)");
  close(out.loss, expected.loss);
  const m = out.metrics;
  close(m.kl!, 0.625);
  close(m["rewards/chosen_sum"]!, 0.1 * (2 + 0.5));
  close(m["rewards/rejected_sum"]!, 0.1 * (-1 - 3));
  close(m["logps/chosen_sum"]!, -9 - 8.5);
  close(m["logps/rejected_sum"]!, -12 - 17);
  assert.deepEqual([m["count/chosen"], m["count/rejected"]], [2, 2]);
  assert.deepEqual(Object.keys(m).sort(), ["count/chosen", "count/rejected", "kl", "logps/chosen_sum", "logps/rejected_sum", "rewards/chosen_sum", "rewards/rejected_sum"]);
});

test("with the policy equal to the reference every loss is 1 − σ(0) = ½ and every reward 0", async () => {
  await initEngine();
  const same = { ...batch, policy: batch.reference, policyKl: batch.referenceKl };
  const out = await runLoss((l: KtoLogps) => ktoLoss(l, 0.1, defaultKTOConfig), device(same));
  close(out.loss, 0.5);
  for (const k of ["kl", "rewards/chosen_sum", "rewards/rejected_sum"]) close(out.metrics[k]!, 0, 1e-6, k);
});

test("a negative KL estimate is clamped to 0", async () => {
  await initEngine();
  const below = { ...batch, policyKl: batch.referenceKl.map((r) => r - 2) };
  const out = await runLoss((l: KtoLogps) => ktoLoss(l, 0.1, defaultKTOConfig), device(below));
  assert.equal(out.metrics.kl, 0);
  close(out.loss, expectedKto(below, 0.1).loss);
  // z₀ = 0 is APO-zero's loss on the undesirable side too: 1 − σ(−βr) = σ(βr).
  close(out.loss, (await runLoss((l: KtoLogps) => apoZeroUnpairedLoss(l, 0.1, defaultKTOConfig), device(batch))).loss);
});

test("desirable_weight and undesirable_weight scale each kind's losses", async () => {
  await initEngine();
  const weights = { desirable_weight: 2, undesirable_weight: 0.5 };
  const out = await runLoss((l: KtoLogps) => ktoLoss(l, 0.1, weights), device(batch));
  close(out.loss, expectedKto(batch, 0.1, 2, 0.5).loss);
  close(out.loss, 0.5931293430910485);
  // Only desirable examples: the undesirable weight cannot matter.
  const desirable = { ...batch, labels: [1, 1, 1, 1] };
  const a = await runLoss((l: KtoLogps) => ktoLoss(l, 0.3, { desirable_weight: 1, undesirable_weight: 7 }), device(desirable));
  close(a.loss, expectedKto(desirable, 0.3).loss);
  assert.deepEqual([a.metrics["count/chosen"], a.metrics["count/rejected"], a.metrics["rewards/rejected_sum"]], [4, 0, 0]);
});

test("APO-zero (unpaired): 1 − σ(βr) for desirable, σ(βr) for undesirable, no KL", async () => {
  await initEngine();
  const { policyKl: _k, referenceKl: _r, ...noKl } = device(batch);
  release([_k, _r]);
  const out = await runLoss((l: KtoLogps) => ktoLosses.apo_zero_unpaired(l, defaultKTOConfig), noKl);
  const r = batch.policy.map((p, i) => p - batch.reference[i]!);
  close(out.loss, mean(r.map((x, i) => (batch.labels[i] ? 1 - sigmoid(0.1 * x) : sigmoid(0.1 * x)))));
  close(out.loss, 0.4595617254781782);
  assert.equal(out.metrics.kl, 0);
  assert.throws(() => ktoLoss(noKl, 0.1, defaultKTOConfig), /policyKl/);
});

test("the gradient flows through each example's log-ratio, not through the KL reference point", async () => {
  await initEngine();
  const vg = compile(
    valueAndGrad(
      (policy: Array, policyKl: Array, reference: Array, referenceKl: Array, labels: Array) => ktoLoss({ policy, reference, labels, policyKl, referenceKl }, 0.1, { desirable_weight: 2, undesirable_weight: 0.5 }).loss,
      { argnums: [0, 1] },
    ),
  );
  const [loss, [gradPolicy, gradKl]] = vg(arr(batch.policy), arr(batch.policyKl), arr(batch.reference), arr(batch.referenceKl), arr(batch.labels)) as unknown as [Array, [Array, Array]];
  close(await toNumber(loss), expectedKto(batch, 0.1, 2, 0.5).loss);
  // ∂/∂π_i of w(1 − σ(±β(r − z₀)))/B with z₀ held fixed: ∓wβσ(1 − σ)/B.
  const z = 0.625;
  const expected = batch.policy.map((p, i) => {
    const r = p - batch.reference[i]!;
    const [w, sign] = batch.labels[i] ? [2, 1] : [0.5, -1];
    const s = sigmoid(sign * 0.1 * (r - z));
    return (-sign * w * 0.1 * s * (1 - s)) / 4;
  });
  allClose(await toHost(gradPolicy), expected, 1e-5, "∂loss/∂policy");
  assert.deepEqual([...(await toHost(gradKl))], [0, 0, 0, 0], "no gradient through z₀");
  vg.dispose();
});

test("TRL's defaults", () => {
  assert.deepEqual(
    [defaultKTOConfig.beta, defaultKTOConfig.loss_type, defaultKTOConfig.desirable_weight, defaultKTOConfig.undesirable_weight],
    [0.1, "kto", 1, 1],
  );
});
