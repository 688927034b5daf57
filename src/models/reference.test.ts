// Forward logits, every parameter gradient and a 20-step loss curve of TrainStep (AdamW, clipping)
// on tiny random Llama, GPT-2, Qwen2 and Llama-3 (rope_scaling) models, against PyTorch (fixtures
// from scripts/reference/make_fixtures.py); and Llama 3's rescaled RoPE frequencies on their own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { initEngine, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, fromHost, intsFromHost, release, toHost, toNumber } from "../engine/arrays.ts";
import type { Params } from "../engine/optim.ts";
import { parseConfig } from "./config.ts";
import { architectureFor } from "./architecture.ts";
import type { Llama3RopeScaling } from "./config-fields.ts";
import { causalLmForward, fullBatch, maskedLmLoss } from "./forward.ts";
import { ropeInvFreq } from "./layers.ts";
import { paramsFromTensors } from "./params.ts";
import { normRelError } from "./test-helpers.ts";
import type { TensorMap } from "../io/tensors.ts";
import { TrainStep } from "../train/step.ts";

interface Fixture {
  config: unknown;
  params: Record<string, { shape: number[]; data: number[] }>;
  input_ids: number[][];
  attention_mask: number[][];
  position_ids: number[][];
  loss_mask: number[][];
  logits: { shape: number[]; data: number[] };
  loss: number;
  grads: Record<string, { shape: number[]; data: number[] }>;
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number; losses: number[]; final_loss: number };
}

function loadFixture(name: string): Fixture {
  return JSON.parse(readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url), "utf8")) as Fixture;
}

function tensorsOf(fx: Fixture): TensorMap {
  return new Map(Object.entries(fx.params).map(([k, v]) => [k, { shape: v.shape, data: Float32Array.from(v.data) }]));
}

/** Largest |a-b| / max(|b|, floor) — elementwise relative error with a floor so near-zero entries don't dominate. */
function maxRelError(actual: Float32Array, expected: number[], floor: number): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    worst = Math.max(worst, Math.abs(actual[i]! - e) / Math.max(Math.abs(e), floor));
  }
  return worst;
}

function inputsOf(fx: Fixture) {
  const [b, t] = [fx.input_ids.length, fx.input_ids[0]!.length];
  return {
    b,
    t,
    ids: intsFromHost(fx.input_ids.flat(), [b, t]),
    pos: intsFromHost(fx.position_ids.flat(), [b, t]),
    mask: fromHost(fx.attention_mask.flat(), [b, t]),
    lossMask: fromHost(fx.loss_mask.flat(), [b, t]),
  };
}

for (const name of ["llama-tiny.json", "gpt2-tiny.json", "qwen2-tiny.json", "llama3-tiny.json"]) {
  test(`${name}: logits, loss and every gradient match PyTorch`, async () => {
    await initEngine();
    const fx = loadFixture(name);
    const arch = architectureFor(parseConfig(fx.config, name));
    const params = paramsFromTensors(arch, tensorsOf(fx), name);
    const { b, t, ids, pos, mask, lossMask } = inputsOf(fx);

    const forward = compile((p: Params, i: Array, q: Array, m: Array) => causalLmForward(arch, p, fullBatch(i, q, m)));
    const logits = await toHost(forward(params, ids, pos, mask));
    const v = arch.vocabSize;
    // Compare only real (non-padding) positions: padded rows are implementation-defined.
    const real: number[] = [];
    const ours: number[] = [];
    for (let bi = 0; bi < b; bi++) {
      for (let ti = 0; ti < t; ti++) {
        if (fx.attention_mask[bi]![ti] === 0) continue;
        const off = (bi * t + ti) * v;
        real.push(...fx.logits.data.slice(off, off + v));
        ours.push(...logits.subarray(off, off + v));
      }
    }
    const logitErr = normRelError(Float32Array.from(ours), real);
    assert.ok(logitErr < 1e-4, `logits relative error ${logitErr}`);
    assert.ok(maxRelError(Float32Array.from(ours), real, 1e-2) < 1e-3, "an individual logit is off by more than 1e-3 relative");

    const lossAndGrad = compile((p: Params, i: Array, q: Array, m: Array, lm: Array) => valueAndGrad((pp: Params) => maskedLmLoss(arch, pp, fullBatch(i, q, m), lm))(p));
    const [loss, grads] = lossAndGrad(params, ids, pos, mask, lossMask) as unknown as [Array, Params];
    const lossValue = await toNumber(loss);
    assert.ok(Math.abs(lossValue - fx.loss) / fx.loss < 1e-5, `loss ${lossValue} vs ${fx.loss}`);
    assert.deepEqual(Object.keys(grads).sort(), Object.keys(fx.grads).sort());
    for (const [pname, g] of Object.entries(grads)) {
      const expected = fx.grads[pname]!;
      const ours = await toHost(g);
      const err = normRelError(ours, expected.data);
      assert.ok(err < 1e-4, `${pname}: gradient relative error ${err}`);
      const elementwise = maxRelError(ours, expected.data, 1e-2 * Math.max(...expected.data.map(Math.abs)));
      assert.ok(elementwise < 1e-3, `${pname}: an element is off by ${elementwise} relative`);
    }
    release([params, ids, pos, mask, lossMask]);
  });

  test(`${name}: 20 AdamW steps with clipping reproduce PyTorch's loss curve`, async () => {
    await initEngine();
    const fx = loadFixture(name);
    const arch = architectureFor(parseConfig(fx.config, name));
    let params = paramsFromTensors(arch, tensorsOf(fx), name);
    const { ids, pos, mask, lossMask } = inputsOf(fx);
    type Batch = { ids: Array; pos: Array; mask: Array; lossMask: Array };
    // The fixture's torch.optim.AdamW decays every parameter (no HF exemptions).
    const adamw = { beta1: fx.adamw.betas[0], beta2: fx.adamw.betas[1], eps: fx.adamw.eps, weightDecay: fx.adamw.weight_decay };
    const trainer = new TrainStep((p: Params, b: Batch) => ({ loss: maskedLmLoss(arch, p, fullBatch(b.ids, b.pos, b.mask), b.lossMask), metrics: {} }), { adamw, maxGradNorm: fx.adamw.max_grad_norm });
    let state = trainer.init(params);
    const losses: number[] = [];
    for (let k = 1; k <= fx.adamw.losses.length; k++) {
      const out = await trainer.step(params, state, [{ ids, pos, mask, lossMask }], fx.adamw.lr, k);
      [params, state] = [out.params, out.state];
      losses.push(out.loss);
    }
    for (let k = 0; k < losses.length; k++) {
      const expected = fx.adamw.losses[k]!;
      assert.ok(Math.abs(losses[k]! - expected) < 5e-5 + 1e-3 * expected, `step ${k + 1}: loss ${losses[k]} vs torch ${expected}`);
    }
    trainer.dispose();
    release([params, state, ids, pos, mask, lossMask]);
  });
}

test("Llama 3 rope_scaling: the rescaled frequencies match transformers' formula (the tiny fixture's and Llama-3.2-1B's)", () => {
  const fx = JSON.parse(readFileSync(new URL("../../test/fixtures/llama3-tiny.json", import.meta.url), "utf8")) as {
    inv_freq_cases: { head_dim: number; rope_theta: number; rope_scaling: Llama3RopeScaling; inv_freq: number[] }[];
  };
  assert.equal(fx.inv_freq_cases.length, 2);
  for (const c of fx.inv_freq_cases) {
    const ours = ropeInvFreq(c.head_dim, c.rope_theta, c.rope_scaling);
    const plain = ropeInvFreq(c.head_dim, c.rope_theta);
    assert.equal(ours.length, c.inv_freq.length);
    // float32 on both sides (torch computes in float32, we round float64): a few ulps at most.
    assert.ok(maxRelError(ours, c.inv_freq, 0) < 1e-6, `head_dim ${c.head_dim}: relative error ${maxRelError(ours, c.inv_freq, 0)}`);
    const kept = c.inv_freq.filter((f, i) => f === plain[i]).length;
    const divided = c.inv_freq.filter((f, i) => Math.abs(f * c.rope_scaling.factor / plain[i]! - 1) < 1e-6).length;
    assert.ok(kept > 0 && divided > 0 && kept + divided < c.inv_freq.length, `every band occurs: ${kept} kept, ${divided} divided of ${c.inv_freq.length}`);
  }
});
