// The training gradient at real vocabulary sizes against PyTorch: a one-layer GPT-2 with GPT-2's
// 50,257 tokens (tied head, so the embedding's gradient is the head's plus the lookup's
// scatter-add) and a one-layer Llama with Llama 2's 32,000 (untied). Logits, loss and every
// gradient, through the gradient the training step uses (lossAndGradients of lmLoss: the head's
// hand-written backward), once with all logits in one block and once in blocks of five tokens and
// vocabulary slices. The reference is scripts/reference/head_reference.py, run here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initEngine, type Array } from "../engine/runtime.ts";
import { compile, fromHost, release, toHost, toNumber } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { tempDir } from "../io/test-helpers.ts";
import { architectureFor, type Architecture } from "../models/architecture.ts";
import { parseConfig } from "../models/config.ts";
import { causalLmForward, fullBatch } from "../models/forward.ts";
import { saveModel } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import { lmBatchFromRows, lmLoss, type LmBatch } from "./lm-loss.ts";
import { lossAndGradients } from "./step.ts";
import { normRelError } from "../models/test-helpers.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("../../scripts/reference/head_reference.py", import.meta.url));

const models = {
  "gpt2, 50,257 tokens, tied": { model_type: "gpt2", vocab_size: 50257, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 32, tie_word_embeddings: true },
  "llama, 32,000 tokens, untied": {
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 32,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: false,
  },
};

/** Weights large enough that a wrong gradient shows: matrices 0.2·N(0,1), norms 1 + 0.1·N, biases 0.1·N. */
function randomParams(arch: Architecture, seed: number): Params {
  const rng = new HostRng(seed);
  const params: Params = {};
  for (const [name, shape] of Object.entries(arch.paramShapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const [scale, offset] = name.endsWith(".bias") ? [0.1, 0] : shape.length === 1 ? [0.1, 1] : [0.2, 0];
    params[name] = fromHost(Float32Array.from({ length: n }, () => offset + scale * rng.normal()), shape);
  }
  return params;
}

function torchReference(dir: string): void {
  const r = spawnSync(PYTHON, [SCRIPT, dir], { encoding: "utf8", env: { ...process.env, OPENBLAS_NUM_THREADS: "2" } });
  assert.equal(r.status, 0, `${SCRIPT} failed (is python3-torch installed? run scripts/setup-test-deps.sh):\n${r.stderr}`);
}

for (const [label, json] of Object.entries(models)) {
  test(`${label}: logits, loss and every gradient of the training loss match PyTorch`, async () => {
    await initEngine();
    const config = parseConfig(json, label);
    const arch = architectureFor(config);
    const params = randomParams(arch, 11);
    const v = arch.vocabSize;
    // Two rows of 12: the second right-padded after 9 tokens, the first's 4-token prompt masked.
    const rng = new HostRng(5);
    const rows = [12, 9].map((n) => Array.from({ length: n }, () => 3 + rng.int(v - 3)));
    rows[0]![3] = rows[1]![5] = rows[0]![7]!; // a token seen three times: its gradient rows add up
    const masks = rows.map((r, i) => r.map((_, t) => (i === 0 && t < 4 ? 0 : 1)));
    const t = 12;
    const batch = lmBatchFromRows(rows, masks, t);
    const dir = await tempDir();
    await saveModel(dir, config, params);
    const pad = (r: number[], fill: number) => [...r, ...Array(t - r.length).fill(fill)];
    writeFileSync(
      join(dir, "batch.json"),
      JSON.stringify({
        input_ids: rows.map((r) => pad(r, 0)),
        attention_mask: rows.map((r) => pad(r.map(() => 1), 0)),
        position_ids: rows.map((r) => pad(r.map((_, i) => i), 0)),
        loss_mask: masks.map((m) => pad(m, 0)),
      }),
    );
    torchReference(dir);
    const reference = (await readSafetensors(join(dir, "reference.safetensors"))).tensors;
    const referenceLoss = (JSON.parse(readFileSync(join(dir, "reference.json"), "utf8")) as { loss: number }).loss;

    const forward = compile((p: Params, b: LmBatch) => causalLmForward(arch, p, fullBatch(b.inputIds, b.positionIds, b.attentionMask)));
    const logits = await toHost(forward(params, batch));
    const want = reference.get("logits")!.data;
    const realPositions = (x: Float32Array) => Float32Array.from(rows.flatMap((r, b) => r.flatMap((_, i) => Array.from(x.subarray((b * t + i) * v, (b * t + i + 1) * v)))));
    const logitError = normRelError(realPositions(logits), realPositions(want));
    assert.ok(logitError < 1e-5, `logits: relative error ${logitError}`);

    // One block of logits (kept for the backward), then blocks of five tokens (recomputed in slices).
    for (const budget of [undefined, 5 * v]) {
      const vg = lossAndGradients(lmLoss(arch), budget);
      const step = compile((p: Params, b: LmBatch) => {
        const [[loss], grads] = vg(p, b);
        return { loss, grads };
      });
      const out = step(params, batch);
      const loss = await toNumber(out.loss);
      assert.ok(Math.abs(loss - referenceLoss) < 1e-5 * referenceLoss, `budget ${budget}: loss ${loss} vs torch ${referenceLoss}`);
      assert.deepEqual(Object.keys(out.grads).sort(), Object.keys(arch.paramShapes).sort());
      for (const [name, g] of Object.entries(out.grads) as [string, Array][]) {
        const expected = reference.get(`grad.${name}`)!.data;
        const err = normRelError(await toHost(g), expected);
        assert.ok(err < 1e-4, `budget ${budget}: ${name}: gradient relative error ${err}`);
      }
      step.dispose();
    }
    forward.dispose();
    release([params, batch]);
  });
}
