// Differentiating a preference batch's rows in parts (TrainStepConfig.rowParts: DPO's chosen rows,
// then its rejected rows; KTO's completions, its KL rows forward only) takes the gradient of the
// whole batch: same loss, metrics and gradients as one pass over every row, within float32
// rounding, for full fine-tuning and for a LoRA adapter on a frozen model. Against TRL's DPO in
// PyTorch: dpo-reference.test.ts. The memory plan takes the rows in parts only when the batch whole
// does not fit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { compile, fromHost, release, toHost, toNumber } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { initEngine, type Array } from "../engine/runtime.ts";
import { architectureFor, type Architecture } from "../models/architecture.ts";
import { parseConfig } from "../models/config.ts";
import { initAdapter, resolveTargetModules, withAdapter, type LoraConfig } from "../models/lora.ts";
import type { Params } from "../models/types.ts";
import { defaultDPOConfig } from "./dpo-config.ts";
import { dpoBatch, dpoLoss, withReferenceLogps as dpoReferenceLogps } from "./dpo.ts";
import { defaultKTOTrainingConfig } from "./kto-config.ts";
import { ktoBatch, ktoHeadLoss, withKlSplits, withReferenceLogps as ktoReferenceLogps } from "./kto.ts";
import { peftDefaults, runPlans } from "./peft-config.ts";
import { preferenceMemoryPlan } from "./preference.ts";
import { lossAndGradients, type HeadLoss } from "./step.ts";
import { hostParams, tinyModel, VOCAB } from "./test-helpers.ts";

/** Random prompts of different lengths, each with two completions of different lengths. */
function rows(n: number, seed: number) {
  const rng = new HostRng(seed);
  const tokens = (k: number) => Array.from({ length: k }, () => 3 + rng.int(VOCAB - 3));
  return Array.from({ length: n }, (_, i) => ({ prompt: [1, ...tokens(1 + rng.int(5))], first: [...tokens(1 + rng.int(4)), 2], second: [...tokens(2 + rng.int(5)), 2], label: i % 3 !== 0 }));
}

/** Every parameter moved by a seeded 5% of its RMS: a policy away from the reference, so the losses' gradients are far from zero. */
async function perturbed(params: Params, seed: number): Promise<Params> {
  const rng = new HostRng(seed);
  const out: Params = {};
  for (const [name, host] of Object.entries(await hostParams(params))) {
    const rms = Math.sqrt(host.reduce((a, x) => a + x * x, 0) / host.length) || 0.05;
    out[name] = fromHost(host.map((x) => x + 0.05 * rms * rng.normal()), params[name]!.shape);
  }
  return out;
}

interface Outcome {
  loss: number;
  metrics: Record<string, number>;
  grads: Record<string, Float32Array>;
}

async function gradients<B>(loss: HeadLoss<B, Record<string, never>>, trained: Params, frozen: Params, batch: B, rowParts: boolean): Promise<Outcome> {
  const vg = lossAndGradients(loss, undefined, rowParts);
  const step = compile((p: Params, b: B, f: Params) => {
    const [[value, metrics], grads] = vg(p, b, { frozen: f });
    return { value, metrics, grads };
  });
  const out = step(trained, batch, frozen);
  step.dispose();
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(out.metrics)) metrics[k] = await toNumber(v);
  const grads: Record<string, Float32Array> = {};
  for (const [k, g] of Object.entries(out.grads) as [string, Array][]) grads[k] = await toHost(g);
  return { loss: await toNumber(out.value), metrics, grads };
}

function assertSameOutcome(parts: Outcome, whole: Outcome, what: string): void {
  assert.ok(Math.abs(parts.loss - whole.loss) < 1e-6, `${what}: loss ${parts.loss} in parts vs ${whole.loss} whole`);
  assert.deepEqual(Object.keys(parts.metrics).sort(), Object.keys(whole.metrics).sort());
  for (const [k, v] of Object.entries(whole.metrics)) assert.ok(Math.abs(parts.metrics[k]! - v) < 1e-5 * Math.max(1, Math.abs(v)), `${what}: ${k} ${parts.metrics[k]} vs ${v}`);
  assert.deepEqual(Object.keys(parts.grads).sort(), Object.keys(whole.grads).sort());
  let largest = 0;
  for (const [name, g] of Object.entries(whole.grads)) {
    const scale = Math.max(...g.map(Math.abs));
    largest = Math.max(largest, scale);
    const worst = Math.max(...g.map((x, i) => Math.abs(x - parts.grads[name]![i]!)));
    assert.ok(worst <= 1e-5 * scale + 1e-9, `${what}: ${name}'s gradient differs by ${worst} (largest entry ${scale})`);
  }
  assert.ok(largest > 1e-3, `${what}: the gradients are too small to compare (${largest})`);
}

/** The model to train (full: every parameter; lora: an adapter with B ≠ 0 on every linear projection) and what the loss reads frozen. */
async function setups(): Promise<{ name: string; arch: Architecture; reference: Params; trained: Params; frozen: Params }[]> {
  const { config, params } = tinyModel(5);
  const arch = architectureFor(config);
  const lora: LoraConfig = { task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: resolveTargetModules(arch, ["all-linear"]), modules_to_save: null, fan_in_fan_out: false, use_rslora: false, base_model_name_or_path: null };
  // PEFT starts B at zero; moved, the adapter changes the policy and both A and B get gradients.
  const adapter = await perturbed(initAdapter(arch, lora, params, 2), 9);
  return [
    { name: "full fine-tuning", arch, reference: params, trained: await perturbed(params, 4), frozen: {} },
    { name: "LoRA", arch: withAdapter(arch, lora), reference: params, trained: adapter, frozen: params },
  ];
}

test("DPO: the chosen rows and then the rejected rows, differentiated apart, give the whole batch's loss, metrics and gradients", async () => {
  await initEngine();
  for (const s of await setups()) {
    for (const loss_type of ["sigmoid", "ipo"] as const) {
      const config = { ...defaultDPOConfig, loss_type, beta: 0.5, max_length: 32, per_device_eval_batch_size: 4 };
      const examples = rows(3, 11).map((r) => ({ prompt: r.prompt, chosen: r.first, rejected: r.second }));
      const pairs = await dpoReferenceLogps(s.arch, s.reference, examples, config, 0);
      const { batch } = dpoBatch(pairs, 32, 0);
      const loss = dpoLoss(s.arch, config);
      const whole = await gradients(loss, s.trained, s.frozen, batch, false);
      assertSameOutcome(await gradients(loss, s.trained, s.frozen, batch, true), whole, `${s.name}, ${loss_type}`);
      release(batch);
    }
  }
});

test("KTO: the completions differentiated, the KL rows run forward only, give the whole batch's loss, metrics and gradients", async () => {
  await initEngine();
  for (const s of await setups()) {
    const config = { ...defaultKTOTrainingConfig, beta: 0.5, max_length: 32, per_device_train_batch_size: 4, per_device_eval_batch_size: 4 };
    const examples = rows(4, 15).map((r) => ({ prompt: r.prompt, completion: r.first, label: r.label }));
    const paired = withKlSplits({ train: examples, eval: [] }, config, s.arch).train;
    const items = await ktoReferenceLogps(s.arch, s.reference, paired, config, 0);
    const { batch } = ktoBatch(items, 32, 0);
    const loss = ktoHeadLoss(s.arch, config);
    const whole = await gradients(loss, s.trained, s.frozen, batch, false);
    // The policy's KL from the reference is positive, so the reference point z₀ is in the loss.
    assert.ok(whole.metrics.kl! > 0, `kl ${whole.metrics.kl}`);
    assertSameOutcome(await gradients(loss, s.trained, s.frozen, batch, true), whole, s.name);
    release(batch);
  }
});

test("the plan takes a LoRA DPO batch's rows in parts only when it does not fit whole: Qwen2.5-0.5B's shape at 1 pair × 256 (not SmolLM2-135M's)", () => {
  const shipped = (name: string) => architectureFor(parseConfig(JSON.parse(readFileSync(new URL(`../../configs/${name}.json`, import.meta.url), "utf8")) as Record<string, unknown>, name));
  const config = { per_device_train_batch_size: 1, per_device_eval_batch_size: 1 };
  const plansAt = (arch: Architecture, canPartRows: boolean) =>
    runPlans({ ...peftDefaults, use_peft: true }, arch, "CAUSAL_LM", false, (adapter, layout) => preferenceMemoryPlan(arch, 2, config, 256, { ...(adapter ? { adapter } : {}), ...layout }), canPartRows);
  const qwen = shipped("qwen2.5-0.5b");
  const whole = plansAt(qwen, false);
  assert.ok(!whole.layout.rowParts && whole.memory.total > whole.memory.limit, `whole: ${whole.memory.total} of ${whole.memory.limit}`);
  const parts = plansAt(qwen, true);
  assert.ok(parts.layout.rowParts && parts.memory.total < 0.95 * parts.memory.limit, `in parts: ${parts.memory.total} of ${parts.memory.limit}`);
  assert.ok(parts.memory.items.some((i) => i.what === "policy gradients of a row part"));
  const smol = plansAt(shipped("smollm2-135m"), true);
  assert.deepEqual(smol.layout, plansAt(shipped("smollm2-135m"), false).layout);
  assert.equal(smol.layout.rowParts, false);
});
