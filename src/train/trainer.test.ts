// The shared trainer: an interrupted run resumed from its last checkpoint ends bit for bit where an
// uninterrupted one does (across an epoch boundary, with accumulation), and a diverging run stops
// with the last good checkpoint kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { release } from "../engine/arrays.ts";
import { initEngine } from "../engine/runtime.ts";
import { tempDir } from "../io/test-helpers.ts";
import { architectureFor } from "../models/architecture.ts";
import { loadModel } from "../models/load.ts";
import { listCheckpoints } from "./checkpoint.ts";
import { defaultSFTConfig, type SFTConfig } from "./config.ts";
import { sftRows, sftTask } from "./sft.ts";
import { assertBitEqual, demonstrations, hostParams, tinyModel } from "./test-helpers.ts";
import { DivergenceError, train } from "./trainer.ts";

const config: SFTConfig = {
  ...defaultSFTConfig,
  learning_rate: 5e-3,
  per_device_train_batch_size: 3,
  gradient_accumulation_steps: 2,
  max_steps: 11,
  logging_steps: 1,
  eval_steps: 4,
  save_steps: 3,
  max_length: 32,
  warmup_ratio: 0.2,
  lr_scheduler_type: "cosine",
  weight_decay: 0.01,
};

function task(cfg: SFTConfig = config) {
  const { config: modelConfig } = tinyModel();
  const rows = sftRows(demonstrations(30, 9), cfg);
  // 24 training rows / 6 per step = 4 steps per epoch: 11 steps cross two epoch boundaries.
  return sftTask(architectureFor(modelConfig), cfg, { train: rows.slice(0, 24), eval: rows.slice(24) }, { modelConfig });
}

const quiet = { progress: false as const, log: () => {} };
const withoutTiming = (text: string) => text.split("\n").filter(Boolean).map((l) => { const { train_tokens_per_second: _t, ...rest } = JSON.parse(l) as Record<string, number>; return rest; });

test("a run stopped after step 7 and resumed from checkpoint-6 ends bit for bit where an uninterrupted run ends", async () => {
  await initEngine();
  const [straightDir, resumedDir] = [await tempDir(), await tempDir()];
  const straight = await train(task(), tinyModel().params, { outputDir: straightDir, ...quiet });
  assert.equal(straight.state.global_step, 11);
  assert.deepEqual(listCheckpoints(straightDir).map((c) => c.step), [3, 6, 9, 11]);

  const first = await train(task(), tinyModel().params, { outputDir: resumedDir, stopAfterStep: 7, ...quiet });
  assert.equal(first.finalCheckpoint, null);
  release(first.params);
  assert.deepEqual(listCheckpoints(resumedDir).map((c) => c.step), [3, 6]);
  const lines: string[] = [];
  const resumed = await train(task(), tinyModel(99).params, { outputDir: resumedDir, resume: true, progress: false, log: (l) => lines.push(l) });
  assert.match(lines.join("\n"), /resuming from .*checkpoint-6 \(step 6 of 11\)/);

  assertBitEqual(await hostParams(straight.params), await hostParams(resumed.params));
  // The metric log reads like one run: step 7's line from the first attempt was dropped on resume.
  assert.deepEqual(withoutTiming(readFileSync(join(resumedDir, "metrics.jsonl"), "utf8")), withoutTiming(readFileSync(join(straightDir, "metrics.jsonl"), "utf8")));
  // DIR itself is the final model, and so is the last checkpoint.
  for (const dir of [resumedDir, join(resumedDir, "checkpoint-11")]) {
    const reloaded = await loadModel(dir);
    assertBitEqual(await hostParams(reloaded.params), await hostParams(resumed.params));
    release(reloaded.params);
  }
  release([straight.params, resumed.params]);
});

test("resuming refuses a checkpoint made with another batch size or other data", async () => {
  await initEngine();
  const dir = await tempDir();
  const done = await train(task({ ...config, max_steps: 3 }), tinyModel().params, { outputDir: dir, ...quiet });
  release(done.params);
  await assert.rejects(train(task({ ...config, per_device_train_batch_size: 2 }), tinyModel().params, { outputDir: dir, resume: true, ...quiet }), /per_device_train_batch_size|other data/);
});

test("a non-finite loss stops the run with a clear message and keeps the last good checkpoint", async () => {
  await initEngine();
  const dir = await tempDir();
  // AdamW moves every weight by about the learning rate per step: 1e30 overflows float32 at once.
  const t = task({ ...config, learning_rate: 1e30, warmup_ratio: 0, lr_scheduler_type: "constant", save_steps: 1 });
  await assert.rejects(train(t, tinyModel().params, { outputDir: dir, ...quiet }), (err: Error) => {
    assert.ok(err instanceof DivergenceError, String(err));
    assert.match(err.message, /(the loss|the gradient norm) became (NaN|-?Infinity).* at step 2;/);
    assert.match(err.message, /last good checkpoint is .*checkpoint-1/);
    return true;
  });
  assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [1]);
  assert.ok(!existsSync(join(dir, "config.json")), "a diverged run must not publish final weights");
});
