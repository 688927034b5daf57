// Gradient accumulation over micro-batches takes the same step as one full batch, and the
// smoke test TRL uses: a few steps on a tiny model, loss finite and every parameter changed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine } from "../engine/runtime.ts";
import { release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { parseConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import { copyParams, initParams } from "../models/params.ts";
import { lmBatchFromRows, lmLoss } from "./lm-loss.ts";
import { TrainStep } from "./step.ts";

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
