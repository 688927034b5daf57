// Gradient accumulation over micro-batches takes the same step as one full batch, and the
// smoke test TRL uses: a few steps on a tiny model, loss finite and every parameter changed. And
// TrainStep itself against PyTorch (scripts/reference/train_step_reference.py, run here): three
// steps of two micro-batches each, clipping active, weight decay with HF's exemptions, a learning
// rate that changes every step.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initEngine, np, type Array } from "../engine/runtime.ts";
import { fromHost, release, toHost } from "../engine/arrays.ts";
import type { Params } from "../engine/optim.ts";
import { HostRng } from "../engine/random.ts";
import { tempDir } from "../io/test-helpers.ts";
import { parseConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import { linear } from "../models/layers.ts";
import { copyParams, initParams } from "../models/params.ts";
import { lmBatchFromRows, lmLoss } from "./lm-loss.ts";
import { trainStepConfig } from "./optimizer.ts";
import { TrainStep, type LossFn } from "./step.ts";

const tiny = parseConfig(
  { model_type: "llama", architectures: ["LlamaForCausalLM"], vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 16, tie_word_embeddings: true },
  "tiny",
);

test("accumulating two micro-batches equals one step on the whole batch; every parameter changes", async () => {
  await initEngine();
  const arch = architectureFor(tiny);
  const rng = new HostRng(1);
  const rows = Array.from({ length: 4 }, () => Array.from({ length: 8 }, () => rng.int(40)));
  const masks = rows.map((r) => r.map((_, t) => (t < 3 ? 0 : 1)));
  const cfg = { adamw: { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 }, maxGradNorm: 1.0 };
  const start = initParams(arch, 3);
  const trainer = new TrainStep(lmLoss(arch), cfg);

  const whole = lmBatchFromRows(rows, masks, 8);
  const a = await trainer.step(copyParams(start), trainer.init(start), [whole], 1e-2, 1);
  const halves = [lmBatchFromRows(rows.slice(0, 2), masks.slice(0, 2), 8), lmBatchFromRows(rows.slice(2), masks.slice(2), 8)];
  const b = await trainer.step(copyParams(start), trainer.init(start), halves, 1e-2, 1);

  assert.ok(Number.isFinite(a.loss) && Math.abs(a.loss - b.loss) < 1e-5, `loss ${a.loss} vs ${b.loss}`);
  assert.ok(Math.abs(a.gradNorm - b.gradNorm) < 1e-4 * a.gradNorm, `grad norm ${a.gradNorm} vs ${b.gradNorm}`);
  for (const name of Object.keys(start)) {
    const [x0, x1, x2] = [await toHost(start[name]!.ref), await toHost(a.params[name]!.ref), await toHost(b.params[name]!.ref)];
    let changed = false;
    for (let i = 0; i < x0.length; i++) {
      if (x1[i] !== x0[i]) changed = true;
      assert.ok(Math.abs(x1[i]! - x2[i]!) < 1e-6, `${name}[${i}]: ${x1[i]} vs ${x2[i]}`);
    }
    assert.ok(changed, `${name} did not change`);
  }
  release([start, a.params, a.state, b.params, b.state, whole, halves]);
});

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("../../scripts/reference/train_step_reference.py", import.meta.url));

test("TrainStep matches torch.optim.AdamW + clip_grad_norm_: 3 steps of 2 micro-batches, clipped, decay with a norm and a bias exempt", async () => {
  await initEngine();
  // y = (x ⊙ g) Wᵀ + b, mean squared error: the model train_step_reference.py builds in torch.
  type Batch = { x: Array; y: Array };
  const loss: LossFn<Batch> = (p, b) => ({
    loss: np.mean(np.square(linear(b.x.mul(p["layers.0.norm.weight"]!), p["layers.0.linear.weight"]!, p["layers.0.linear.bias"]!).sub(b.y))), // [N, O] → scalar
    metrics: {},
  });
  const [D, O, N] = [5, 3, 4];
  const rng = new HostRng(7);
  const normal = (n: number, scale = 1, offset = 0) => Array.from({ length: n }, () => offset + scale * rng.normal());
  const shapes: Record<string, number[]> = { "layers.0.norm.weight": [D], "layers.0.linear.weight": [O, D], "layers.0.linear.bias": [O] };
  const start: Record<string, number[]> = {
    "layers.0.norm.weight": normal(D, 0.1, 1),
    "layers.0.linear.weight": normal(O * D, 0.5),
    "layers.0.linear.bias": normal(O, 0.5, 0.5), // far from 0, so decaying it by mistake shows
  };
  const rows = (n: number, width: number) => Array.from({ length: n }, () => normal(width));
  const steps = [0, 1, 2].map(() => [0, 1].map(() => ({ x: rows(N, D), y: rows(N, O) })));
  const lrs = [0.05, 0.02, 0.04];
  const settings = { weight_decay: 0.1, adam_beta1: 0.8, adam_beta2: 0.95, adam_epsilon: 1e-8, max_grad_norm: 0.5 };

  const dir = await tempDir();
  writeFileSync(join(dir, "input.json"), JSON.stringify({
    params: Object.fromEntries(Object.entries(start).map(([name, data]) => [name, { shape: shapes[name], data }])),
    // Named by hand, so HF's rule is checked too (optimizer.ts's decaysWeight picks them for TrainStep).
    no_decay: ["layers.0.norm.weight", "layers.0.linear.bias"],
    steps,
    lrs,
    betas: [settings.adam_beta1, settings.adam_beta2],
    eps: settings.adam_epsilon,
    weight_decay: settings.weight_decay,
    max_grad_norm: settings.max_grad_norm,
  }));
  const r = spawnSync(PYTHON, [SCRIPT, dir], { encoding: "utf8", env: { ...process.env, OPENBLAS_NUM_THREADS: "2" } });
  assert.equal(r.status, 0, `${SCRIPT} failed (is python3-torch installed? run scripts/setup-test-deps.sh):\n${r.stderr}`);
  const torch = JSON.parse(readFileSync(join(dir, "output.json"), "utf8")) as { steps: { loss: number; grad_norm: number; params: Record<string, number[]> }[] };

  const trainer = new TrainStep(loss, trainStepConfig({ learning_rate: lrs[0]!, ...settings }));
  let params: Params = Object.fromEntries(Object.entries(start).map(([name, data]) => [name, fromHost(data, shapes[name]!)]));
  let state = trainer.init(params);
  for (let k = 0; k < steps.length; k++) {
    const microBatches = steps[k]!.map((mb) => ({ x: fromHost(mb.x.flat(), [N, D]), y: fromHost(mb.y.flat(), [N, O]) }));
    const out = await trainer.step(params, state, microBatches, lrs[k]!, k + 1);
    release(microBatches);
    [params, state] = [out.params, out.state];
    const want = torch.steps[k]!;
    assert.ok(out.gradNorm > settings.max_grad_norm, `step ${k + 1}: grad norm ${out.gradNorm} must exceed max_grad_norm for clipping to be tested`);
    assert.ok(Math.abs(out.loss - want.loss) < 1e-5 * want.loss, `step ${k + 1}: loss ${out.loss} vs torch ${want.loss}`);
    assert.ok(Math.abs(out.gradNorm - want.grad_norm) < 1e-5 * want.grad_norm, `step ${k + 1}: grad norm ${out.gradNorm} vs torch ${want.grad_norm}`);
    for (const name of Object.keys(start)) {
      const ours = await toHost(params[name]!.ref);
      const worst = Math.max(...want.params[name]!.map((v, i) => Math.abs(ours[i]! - v)));
      assert.ok(worst < 1e-6, `step ${k + 1}: ${name} is off by ${worst}`);
    }
  }
  release([params, state]);
  trainer.dispose();
});
