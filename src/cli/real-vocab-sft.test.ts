// `rlhf sft` on a model with a real vocabulary, as a user runs it: a one-layer GPT-2 as wide as
// GPT-2 (768) with GPT-2's 50,257 tokens and its tokenizer, two steps of full fine-tuning at batch
// 1 × 256. Before the engine gathered embeddings and blocked the LM head, this died before its
// first step with "RangeError: Allocation exceeds the 4 GiB memory32 limit" (eye(50,257)).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initEngine } from "../engine/runtime.ts";
import { release } from "../engine/arrays.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { architectureFor } from "../models/architecture.ts";
import { parseConfig } from "../models/config.ts";
import { loadModel, saveModel } from "../models/load.ts";
import { initParams } from "../models/params.ts";

const cli = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));

test("rlhf sft trains a GPT-2 with the real 50,257-token vocabulary (2 steps at 1 × 256) and the result reloads", async () => {
  await initEngine();
  const dir = await tempDir();
  const modelDir = join(dir, "gpt2-1layer");
  const config = parseConfig({ model_type: "gpt2", vocab_size: 50257, n_embd: 768, n_layer: 1, n_head: 12, n_positions: 1024 }, "gpt2-1layer");
  const params = initParams(architectureFor(config), 0);
  await saveModel(modelDir, config, params);
  release(params);
  copyFileSync(sharedData("tokenizers/gpt2-vocab.json"), join(modelDir, "vocab.json"));
  copyFileSync(sharedData("tokenizers/gpt2-merges.txt"), join(modelDir, "merges.txt"));

  const output = join(dir, "sft");
  const args = ["sft", "--model", modelDir, "--data", sharedData("self-instruct/seed_tasks.jsonl"), "--output", output];
  const settings = ["--max_steps", "2", "--per_device_train_batch_size", "1", "--max_length", "256", "--packing", "true", "--eval_split_ratio", "0.01", "--logging_steps", "1", "--eval_steps", "100", "--save_steps", "100"];
  const r = spawnSync(process.execPath, [cli, ...args, ...settings], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const steps = readFileSync(join(output, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; loss?: number });
  const losses = steps.filter((s) => s.loss !== undefined).map((s) => s.loss!);
  assert.equal(losses.length, 2, "two logged training steps");
  // Random weights: the loss starts near ln(50,257) ≈ 10.8 and must move.
  assert.ok(losses.every((l) => Number.isFinite(l) && l > 5 && l < 20), `losses ${losses}`);
  const trained = await loadModel(output);
  assert.equal(trained.arch.vocabSize, 50257);
  release(trained.params);
});
