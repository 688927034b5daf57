// `rlhf bench --config` on a tiny config: the JSON result has every metric (timings are not checked),
// --use_peft times the LoRA DPO step alone, --profile profiles the same shape, and running out of
// the engine's memory is told apart from bugs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "../io/test-helpers.ts";
import { runRlhf, runRlhfOk } from "../cli/test-helpers.ts";
import type { ModelBenchResult } from "./model-bench.ts";
import { isEngineOutOfMemory } from "../engine/out-of-memory.ts";

async function tinyConfig(): Promise<string> {
  const path = join(await tempDir(), "tiny.json");
  const config = { model_type: "llama", hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 300, max_position_embeddings: 1024, tie_word_embeddings: true };
  await writeFile(path, JSON.stringify(config));
  return path;
}

test("rlhf bench --config times the three workloads at the config's shape and reports their memory", async () => {
  const config = await tinyConfig();
  const r = runRlhfOk(["bench", "--config", config, "--runs", "1", "--json"]);
  const out = JSON.parse(r.stdout) as ModelBenchResult;
  assert.equal(out.config, config);
  assert.equal(out.model_type, "llama");
  assert.equal(out.params, 300 * 32 + 32 * (32 + 16 + 16 + 32) + 3 * 32 * 64 + 3 * 32);
  for (const w of ["forward", "train", "generate"] as const) {
    const ms = w === "train" ? out.train_step_ms : w === "forward" ? out.forward_ms : out.generate_64_ms;
    assert.ok(typeof ms === "number" && ms > 0, `${w}: ${ms}`);
    assert.ok(out[`${w}_tokens_per_s`]! > 0, w);
    assert.ok(out[`${w}_engine_peak_mb`]! > 0, w);
  }
  // The weights are live through every workload; training adds two AdamW moments and gradients.
  assert.ok(out.train_engine_peak_mb! > out.forward_engine_peak_mb! && out.engine_heap_mb >= out.train_engine_peak_mb!, JSON.stringify(out));
  assert.ok(out.peak_rss_mb > 0 && out.train_plan_mb! > 0);
  assert.equal(out.dpo_step_ms, null);
  assert.equal(out.lora, null);
  assert.deepEqual(out.did_not_fit, {});
  assert.deepEqual(out.shapes, {
    forward: "forward pass, batch 1 × 512",
    train: "training step, batch 1 × 512 (AdamW)",
    generate: "generation, 8 sequences × (16-token prompt + 64 new tokens)",
  });
  assert.deepEqual([out.runs, out.warmup], [1, 1]);
  assert.match(r.stderr, /bench: forward pass, batch 1 × 512 at .*tiny\.json \(18,912 parameters\)…/);
});

test("rlhf bench --config --use_peft times the LoRA DPO step alone, with TRL's LoRA defaults", async () => {
  const config = await tinyConfig();
  const r = runRlhfOk(["bench", "--config", config, "--use_peft", "--runs", "1", "--json"]);
  const out = JSON.parse(r.stdout) as ModelBenchResult;
  assert.ok(out.dpo_step_ms! > 0 && out.dpo_engine_peak_mb! > 0, JSON.stringify(out));
  // One pair: two rows of 128 + 128 tokens a step.
  assert.ok(Math.abs(out.dpo_tokens_per_s! - (1000 * 512) / out.dpo_step_ms!) <= 0.1 * out.dpo_tokens_per_s!, JSON.stringify(out));
  // r 16 on q_proj [32 → 32] and v_proj [32 → 16]: A [16, 32] and B [out, 16] each.
  assert.deepEqual(out.lora, { adapter_params: 16 * 32 + 32 * 16 + 16 * 32 + 16 * 16, r: 16, lora_alpha: 32, target_modules: ["q_proj", "v_proj"] });
  for (const m of ["forward_ms", "train_step_ms", "generate_64_ms", "train_plan_mb"] as const) assert.equal(out[m], null, m);
  assert.deepEqual(out.shapes, { dpo: "LoRA DPO step, 1 pair × 2 rows of (128-token prompt + 128-token completion) (AdamW on the adapter)" });
  assert.deepEqual(out.did_not_fit, {});
});

test("rlhf bench --use_peft without --config is a usage error", () => {
  const r = runRlhf(["bench", "--use_peft"]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--use_peft: needs --config/);
});

test("rlhf bench --config --rollout_engine llama.cpp times generation alone, on llama.cpp", async () => {
  const config = await tinyConfig();
  const r = runRlhfOk(["bench", "--config", config, "--rollout_engine", "llama.cpp", "--runs", "1", "--json"]);
  const out = JSON.parse(r.stdout) as ModelBenchResult;
  assert.equal(out.generate_engine, "llama.cpp");
  assert.ok(out.generate_64_ms! > 0 && out.generate_tokens_per_s! > 0, JSON.stringify(out));
  for (const m of ["forward_ms", "train_step_ms", "dpo_step_ms"] as const) assert.equal(out[m], null, m);
  assert.deepEqual(out.shapes, { generate: "generation, 8 sequences × (16-token prompt + 64 new tokens) on llama.cpp" });
  assert.deepEqual(out.did_not_fit, {});
  const text = runRlhfOk(["bench", "--config", config, "--rollout_engine", "llama.cpp", "--runs", "1"]).stdout;
  assert.match(text, /on llama\.cpp: [\d.]+ ms, [\d.]+ tokens\/s\n/);
});

test("rlhf bench --rollout_engine: an unknown engine, or with --use_peft, is a usage error", async () => {
  const unknown = runRlhf(["bench", "--rollout_engine", "vllm"]);
  assert.equal(unknown.status, 2, unknown.stderr);
  assert.match(unknown.stderr, /--rollout_engine: expected one of jax-js, llama\.cpp, got "vllm"/);
  const both = runRlhf(["bench", "--config", await tinyConfig(), "--use_peft", "--rollout_engine", "llama.cpp"]);
  assert.equal(both.status, 2, both.stderr);
  assert.match(both.stderr, /give one of them/);
});

test("rlhf bench --profile --config profiles the workload at the config's shape", async () => {
  const config = await tinyConfig();
  const r = runRlhfOk(["bench", "--profile", "train", "--config", config, "--runs", "1", "--top", "3", "--json"]);
  const out = JSON.parse(r.stdout) as { workload: string; config: string; groups: unknown[]; kernelMs: number };
  assert.deepEqual([out.workload, out.config, out.groups.length], ["train", config, 3]);
  assert.ok(out.kernelMs > 0);
  assert.match(r.stderr, /profiling train at .*tiny\.json \(1 traced repetitions after 1 warm-up runs\)/);
});

test("only the engine's own out-of-memory errors count as a shape that did not fit", () => {
  assert.ok(isEngineOutOfMemory(new RangeError("Allocation exceeds the 4 GiB memory32 limit")));
  assert.ok(isEngineOutOfMemory(new RangeError("WebAssembly.Memory.grow(): Maximum memory size exceeded")));
  assert.ok(!isEngineOutOfMemory(new RangeError("Index 9 out of bounds for axis of size 3")));
  assert.ok(!isEngineOutOfMemory(new Error("Allocation exceeds the 4 GiB memory32 limit")));
});
