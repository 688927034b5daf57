// The memory plan against the engine's own accounting, and the refusal a user meets instead of a
// RangeError: training steps of a Llama and a GPT-2 with real vocabularies, measured with
// wasmMemoryStats, must stay under what the plan says (and not far under it); a plan over 4 GiB
// is refused before any weights load, in one line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initEngine, wasmMemoryStats } from "../engine/runtime.ts";
import { release } from "../engine/arrays.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { architectureFor } from "../models/architecture.ts";
import { parseConfig } from "../models/config.ts";
import { initParams } from "../models/params.ts";
import { lmBatchFromRows, lmLoss } from "./lm-loss.ts";
import { sftMemoryPlan } from "./sft.ts";
import { TrainStep } from "./step.ts";
import { initAdapter, withAdapter } from "../models/lora.ts";
import { adapterShape, formatPlan } from "./memory-plan.ts";
import { loraConfigFor, peftDefaults } from "./peft-config.ts";

const cli = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));

const shapes = {
  "llama, 32,000 tokens, 4 layers, 2 × 256": {
    config: { model_type: "llama", vocab_size: 32000, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 512, tie_word_embeddings: true },
    rows: 2,
    length: 256,
  },
  "gpt2, 50,257 tokens, 2 layers, 4 × 128": {
    config: { model_type: "gpt2", vocab_size: 50257, n_embd: 192, n_layer: 2, n_head: 4, n_positions: 256 },
    rows: 4,
    length: 128,
  },
};

test("a training step's heap stays under its memory plan, and within 1.6x of it", async () => {
  await initEngine();
  for (const [label, s] of Object.entries(shapes)) {
    const before = wasmMemoryStats()!.heapBytes;
    wasmMemoryStats({ reset: true });
    const arch = architectureFor(parseConfig(s.config, label));
    let params = initParams(arch, 0);
    const rows = Array.from({ length: s.rows }, (_, r) => Array.from({ length: s.length }, (_, i) => (i * 31 + r * 7) % arch.vocabSize));
    const step = new TrainStep(lmLoss(arch), { adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, maxGradNorm: 1 });
    let state = step.init(params);
    let grown = 0;
    for (let k = 1; k <= 2; k++) {
      const batch = lmBatchFromRows(rows, rows.map((r) => r.map(() => 1)), s.length);
      ({ params, state } = await step.step(params, state, [batch], 1e-3, k));
      release(batch);
      grown = Math.max(grown, wasmMemoryStats()!.peakLiveBytes);
    }
    const plan = sftMemoryPlan(arch, { per_device_train_batch_size: s.rows, per_device_eval_batch_size: 1 }, s.length);
    // Peak bytes in buffers at once (the heap's top also holds earlier tests' free blocks).
    assert.ok(grown <= plan.total, `${label}: measured ${(grown / 2 ** 20).toFixed(0)} MiB, planned ${(plan.total / 2 ** 20).toFixed(0)} MiB\n${formatPlan(plan)}`);
    assert.ok(plan.total <= 1.6 * grown, `${label}: planned ${(plan.total / 2 ** 20).toFixed(0)} MiB for a measured ${(grown / 2 ** 20).toFixed(0)} MiB: too cautious`);
    assert.ok(wasmMemoryStats()!.heapBytes - before <= plan.total, `${label}: the heap grew past the plan`);
    release([params, state]);
    step.dispose();
  }
});

test("a LoRA training step (adapter on every linear projection, dropout on) stays under its plan, which counts the frozen base once and the adapter's moments", async () => {
  await initEngine();
  for (const [label, s] of Object.entries(shapes)) {
    wasmMemoryStats({ reset: true });
    const arch = architectureFor(parseConfig(s.config, label));
    const base = initParams(arch, 0);
    const lora = loraConfigFor({ ...peftDefaults, use_peft: true, lora_target_modules: ["all-linear"] }, arch, "CAUSAL_LM", "");
    let params = initAdapter(arch, lora, base, 1);
    const rows = Array.from({ length: s.rows }, (_, r) => Array.from({ length: s.length }, (_, i) => (i * 31 + r * 7) % arch.vocabSize));
    const step = new TrainStep(lmLoss(withAdapter(arch, lora)), { adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, maxGradNorm: 1, rngSeed: 0 });
    let state = step.init(params);
    let grown = 0;
    for (let k = 1; k <= 2; k++) {
      const batch = lmBatchFromRows(rows, rows.map((r) => r.map(() => 1)), s.length);
      ({ params, state } = await step.step(params, state, [batch], 1e-3, k, base));
      release(batch);
      grown = Math.max(grown, wasmMemoryStats()!.peakLiveBytes);
    }
    const config = { per_device_train_batch_size: s.rows, per_device_eval_batch_size: 1 };
    const plan = sftMemoryPlan(arch, config, s.length, adapterShape(arch, lora, true));
    assert.ok(grown <= plan.total, `${label}: measured ${(grown / 2 ** 20).toFixed(0)} MiB, planned ${(plan.total / 2 ** 20).toFixed(0)} MiB\n${formatPlan(plan)}`);
    assert.ok(plan.total <= 1.6 * grown, `${label}: planned ${(plan.total / 2 ** 20).toFixed(0)} MiB for a measured ${(grown / 2 ** 20).toFixed(0)} MiB: too cautious\n${formatPlan(plan)}`);
    assert.ok(plan.total < sftMemoryPlan(arch, config, s.length).total, "LoRA plans less than full fine-tuning");
    release([params, state, base]);
    step.dispose();
  }
});

/** An HF directory with only config.json: enough to plan, and proof that the weights never load. */
function configOnly(dir: string, config: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

function sft(model: string, extra: string[]) {
  const args = [cli, "sft", "--model", model, "--tokenizer", sharedData("tokenizers/llama_tokenizer.json"), "--data", sharedData("self-instruct/seed_tasks.jsonl"), "--output", join(model, "out"), ...extra];
  return spawnSync(process.execPath, args, { encoding: "utf8", env: { ...process.env, RLHF_DEBUG: "" } });
}

const smolLM2 = { architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, max_position_embeddings: 8192, rope_theta: 100000, rms_norm_eps: 1e-5, tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0 };

test("rlhf sft --dry-run prints the plan; a run that cannot fit is refused in one line before loading weights", async () => {
  const dir = await tempDir();
  const model = configOnly(join(dir, "smollm2"), smolLM2);
  const fits = sft(model, ["--dry-run", "--per_device_train_batch_size", "1", "--max_length", "256"]);
  assert.equal(fits.status, 0, fits.stderr);
  assert.match(fits.stdout, /model AdamW moments\s+1026 MiB/);
  assert.match(fits.stdout, /fits \(\d+% of the engine's 4 GiB\)/);

  const tooLong = sft(model, ["--per_device_train_batch_size", "8", "--max_length", "1024", "--packing", "true"]);
  assert.equal(tooLong.status, 1);
  assert.match(tooLong.stderr.trim().split("\n").at(-1)!, /^rlhf sft: needs about [\d.]+ GiB of engine memory, more than jax-js's 4 GiB \(.*\); lower per_device_train_batch_size \(now 8\)/);
  assert.doesNotMatch(tooLong.stderr, /\n\s+at /, "no stack trace");

  // Qwen2.5-0.5B's shape: its weights, gradients and moments alone are over the limit.
  const qwen = configOnly(join(dir, "qwen2.5-0.5b"), JSON.parse(readFileSync(fileURLToPath(new URL("../../configs/qwen2.5-0.5b.json", import.meta.url)), "utf8")) as Record<string, unknown>);
  const refused = sft(qwen, ["--per_device_train_batch_size", "8", "--max_length", "1024", "--packing", "true"]);
  assert.equal(refused.status, 1);
  const message = refused.stderr.trim().split("\n").at(-1)!;
  assert.match(message, /^rlhf sft: needs about [\d.]+ GiB of engine memory, more than jax-js's 4 GiB \(.*\); the weights, gradients and AdamW moments alone take [\d.]+ GiB: full fine-tuning at this size cannot fit, whatever the batch; use a smaller model/);
  assert.doesNotMatch(refused.stderr, /\n\s+at /, "no stack trace");

  // At a batch LoRA fits, the refusal of full fine-tuning says so; with --use_peft the plan counts
  // the frozen weights once and the adapter's moments, and the run is not refused.
  const small = ["--per_device_train_batch_size", "1", "--max_length", "128"];
  const suggested = sft(qwen, small);
  assert.equal(suggested.status, 1);
  assert.match(suggested.stderr.trim().split("\n").at(-1)!, /full fine-tuning at this size cannot fit, whatever the batch; train with --use_peft \(a LoRA adapter on the frozen model: about [\d.]+ GiB by the plan\)/);
  const peft = sft(qwen, [...small, "--use_peft", "--dry-run"]);
  assert.equal(peft.status, 0, peft.stderr);
  assert.match(peft.stdout, /model base weights\s+188\d MiB\s+494.0M parameters, frozen/);
  assert.match(peft.stdout, /model adapter AdamW moments\s+\d+ MiB/);
  assert.doesNotMatch(peft.stdout, /^\s+model AdamW moments/m);
  assert.match(peft.stdout, /fits \(\d+% of the engine's 4 GiB\)/);
});
