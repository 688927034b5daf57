// SFT: the prompt mask (hand-computed loss, zero gradient from prompt tokens), packing that keeps
// examples apart, truncation, and TRL's smoke test through the shared trainer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { compile, release, toHost, toNumber } from "../engine/arrays.ts";
import { initEngine, np } from "../engine/runtime.ts";
import { architectureFor } from "../models/architecture.ts";
import type { Params } from "../models/types.ts";
import { tempDir } from "../io/test-helpers.ts";
import { defaultSFTConfig, type SFTConfig } from "./config.ts";
import { sftBatch, sftLoss, sftRows, sftTask, type SftBatch } from "./sft.ts";
import { assertAllChanged, assertLogsDocumented, demonstrations, hostParams, tinyModel } from "./test-helpers.ts";
import { train } from "./trainer.ts";
import { headLossValue, lossAndGradients } from "./step.ts";

/**
 * With every layer weight zero, each block adds nothing to the residual stream, so the logits at
 * position t are norm(E[ids[t]]) · Wᵀ: a bigram model whose loss is computed here by hand in
 * float64, and in which a token's embedding receives gradient only from its own position's loss.
 */
async function bigramModel(): Promise<{ arch: ReturnType<typeof architectureFor>; params: Params; host: Record<string, Float32Array> }> {
  const { config, params } = tinyModel(5);
  for (const name of Object.keys(params)) {
    if (name.includes(".layers.") && !name.endsWith("norm.weight")) {
      const zero = np.zerosLike(params[name]!.ref);
      params[name]!.dispose();
      params[name] = zero;
    }
  }
  return { arch: architectureFor(config), params, host: await hostParams(params) };
}

function handLoss(host: Record<string, Float32Array>, ids: number[], targets: boolean[]): number {
  const emb = host["model.embed_tokens.weight"]!;
  const head = host["lm_head.weight"]!;
  const d = 16;
  const v = head.length / d;
  let total = 0;
  let count = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    if (!targets[t + 1]) continue;
    const x = Array.from(emb.subarray(ids[t]! * d, ids[t]! * d + d));
    const rms = Math.sqrt(x.reduce((s, a) => s + a * a, 0) / d + 1e-6);
    const logits = Array.from({ length: v }, (_, j) => x.reduce((s, a, i) => s + (a / rms) * head[j * d + i]!, 0));
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0));
    total += lse - logits[ids[t + 1]!]!;
    count++;
  }
  return total / count;
}

test("prompt tokens contribute zero loss and zero gradient; without the mask they contribute both", async () => {
  await initEngine();
  const { arch, params, host } = await bigramModel();
  // Token 11 occurs only at position 1, inside the prompt: its embedding is reached only through
  // the prediction of position 2, a prompt token.
  const example = { ids: [1, 11, 5, 6, 7, 8, 9], completionMask: [0, 0, 0, 0, 1, 1, 1] };
  const vg = lossAndGradients(sftLoss(arch));
  const lossAndGrad = compile((p: Params, b: SftBatch) => {
    const [[loss], grads] = vg(p, b);
    return [loss, grads] as const;
  });
  const row11 = async (grads: Params) => (await toHost(grads["model.embed_tokens.weight"]!.ref)).subarray(11 * 16, 12 * 16);

  const masked = sftBatch(sftRows([example], { max_length: 16, packing: false, completion_only_loss: true }), 8);
  const [lossM, gradM] = lossAndGrad(params, masked.batch);
  const handM = handLoss(host, example.ids, example.completionMask.map(Boolean));
  assert.ok(Math.abs((await toNumber(lossM)) - handM) < 1e-5, `masked loss vs hand-computed ${handM}`);
  assert.equal(masked.weight, 3);
  assert.ok((await row11(gradM)).every((g) => g === 0), "a prompt-only token received gradient");

  const full = sftBatch(sftRows([example], { max_length: 16, packing: false, completion_only_loss: false }), 8);
  const [lossF, gradF] = lossAndGrad(params, full.batch);
  const handF = handLoss(host, example.ids, example.ids.map((_, t) => t > 0));
  assert.ok(Math.abs((await toNumber(lossF)) - handF) < 1e-5, `unmasked loss vs hand-computed ${handF}`);
  assert.ok(Math.abs(handF - handM) > 1e-3, "the test example does not tell the two losses apart");
  assert.ok((await row11(gradF)).some((g) => g !== 0), "without the mask the prompt token should get gradient");
  release([params, gradM, gradF, masked.batch, full.batch]);
  lossAndGrad.dispose();
});

test("a packed row gives the same loss as its examples in separate rows; truncation keeps the head", async () => {
  await initEngine();
  const { config, params } = tinyModel(7);
  const arch = architectureFor(config);
  const examples = demonstrations(3, 4);
  const cfg = { max_length: 32, completion_only_loss: true };
  const packed = sftRows(examples, { ...cfg, packing: true });
  assert.equal(packed.length, 1, "three short examples fit one 32-token row");
  const separate = sftRows(examples, { ...cfg, packing: false });
  const loss = compile((p: Params, b: SftBatch) => headLossValue(sftLoss(arch), p, b).loss);
  const a = sftBatch(packed, 32);
  const b = sftBatch(separate, 16);
  assert.equal(a.weight, b.weight);
  const [la, lb] = [await toNumber(loss(params, a.batch)), await toNumber(loss(params, b.batch))];
  assert.ok(Math.abs(la - lb) < 1e-5, `packed ${la} vs separate ${lb}`);

  const [truncated] = sftRows([{ ids: [1, 2, 3, 4, 5, 6], completionMask: [0, 0, 1, 1, 1, 1] }], { max_length: 4, packing: false, completion_only_loss: true });
  assert.deepEqual(truncated!.segments, [{ ids: [1, 2, 3, 4], lossMask: [0, 0, 1, 1] }]);
  release([params, a.batch, b.batch]);
  loss.dispose();
});

test("SFT smoke test: a few steps, the loss is finite, every parameter changed, held-out loss falls, exactly the documented metrics logged", async () => {
  await initEngine();
  const dir = await tempDir();
  const { config: modelConfig, params } = tinyModel(3);
  const arch = architectureFor(modelConfig);
  const before = await hostParams(params);
  const config: SFTConfig = { ...defaultSFTConfig, learning_rate: 1e-2, per_device_train_batch_size: 4, max_steps: 6, logging_steps: 2, eval_steps: 3, save_steps: 100, max_length: 32, weight_decay: 0.01, warmup_steps: 1 };
  const rows = sftRows(demonstrations(40), config);
  const task = sftTask(arch, config, { train: rows.slice(0, 32), eval: rows.slice(32) }, { modelConfig });
  const result = await train(task, params, { outputDir: dir, progress: false, log: () => {} });
  assertAllChanged(before, await hostParams(result.params));
  const logged = result.state.log_history;
  const trainLogs = logged.filter((r) => "loss" in r);
  const evals = logged.filter((r) => "eval_loss" in r);
  assert.deepEqual(trainLogs.map((r) => r.step), [2, 4, 6]);
  for (const r of trainLogs) assert.ok(Number.isFinite(r.loss) && Number.isFinite(r.grad_norm) && r.learning_rate! > 0, JSON.stringify(r));
  assertLogsDocumented(logged);
  assert.deepEqual(evals.map((r) => r.step), [3, 6]);
  assert.ok(evals[1]!.eval_loss! < evals[0]!.eval_loss!, `eval loss ${evals[0]!.eval_loss} -> ${evals[1]!.eval_loss}`);
  release(result.params);
});
