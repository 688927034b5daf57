// PPO with rollouts sampled by llama.cpp (--rollout_engine llama.cpp): a tiny random Llama with
// stories260K's 512-token vocabulary trains two steps; every metric METRICS.md lists is logged and
// finite, the sampler's log-probs sit near the trainer's (importance ratio ~1), every trained
// parameter changes; a LoRA policy is sampled from its base (exported once) with its adapter synced
// each step.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine } from "../engine/runtime.ts";
import { toHost } from "../engine/arrays.ts";
import { sharedData } from "../io/test-helpers.ts";
import { parseConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import { copyParams, initParams } from "../models/params.ts";
import { loadTokenizer } from "../tokenizers/load.ts";
import { initAdapter, resolveTargetModules, withAdapter, type LoraConfig } from "../models/lora.ts";
import { PpoTrainer } from "./ppo-trainer.ts";
import { defaultPpoRunConfig } from "./ppo-config.ts";
import { documentedMetrics, shareOfE } from "./test-helpers.ts";

const tiny = { model_type: "llama", vocab_size: 512, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64, tie_word_embeddings: false, initializer_range: 0.1 };
const PROMPTS = ["Once upon a time", "The dog", "Lily saw", "One day"];

/** The tiny policy's architecture, tok512, and a fresh value model. */
async function setup() {
  await initEngine();
  const tokenizer = await loadTokenizer(sharedData("llama2c/tok512.bin"));
  const arch = architectureFor(parseConfig(tiny, "tiny"));
  const valueConfig = parseConfig({ ...tiny, architectures: ["LlamaForSequenceClassification"], num_labels: 1, pad_token_id: 0 }, "tiny value");
  const valueArch = architectureFor(valueConfig);
  return { tokenizer, arch, value: { valueConfig, valueArch, value: initParams(valueArch, 2) } };
}

test("PPO with --rollout_engine llama.cpp: two steps, documented metrics finite, importance ratio ~1, parameters change", async () => {
  const { tokenizer, arch, value } = await setup();
  const policy = initParams(arch, 1);
  const before = await toHost(policy["model.layers.0.self_attn.q_proj.weight"]!.ref);
  const models = { arch, policy, reference: copyParams(policy), ...value };
  const config = { ...defaultPpoRunConfig, batch_size: 4, total_steps: 2, learning_rate: 1e-2, ptx_coef: 0, temperature: 1, response_length: 8, rollout_engine: "llama.cpp" as const };
  const trainer = new PpoTrainer({ config, models, tokenizer, prompts: PROMPTS, reward: shareOfE, eosIds: [2] });
  for (let i = 0; i < 2; i++) {
    const { metrics } = await trainer.step();
    assert.deepEqual(Object.keys(metrics).sort(), [...documentedMetrics("rlhf ppo"), ...documentedMetrics("rlhf ppo", "Logged with --rollout_engine llama.cpp")].sort());
    for (const [key, value] of Object.entries(metrics)) assert.ok(Number.isFinite(value), `${key} = ${value}`);
    // llama.cpp's F16 KV cache against the trainer's float32 (the F32 cache: ~1e-6, rollout-engine.test.ts).
    assert.ok(metrics["sampling/sampling_logp_difference/max"]! < 0.05, `log-probs differ by ${metrics["sampling/sampling_logp_difference/max"]}`);
    assert.ok(Math.abs(metrics["sampling/importance_sampling_ratio/mean"]! - 1) < 0.01);
  }
  const after = await toHost(trainer.policy["model.layers.0.self_attn.q_proj.weight"]!.ref);
  assert.ok(after.some((x, i) => x !== before[i]), "the policy did not change");
  await trainer.dispose();
});

test("PPO with --rollout_engine llama.cpp and a LoRA policy: llama.cpp samples from the base with the adapter of each step (importance ratio ~1 once B ≠ 0)", async () => {
  const { tokenizer, arch, value } = await setup();
  const base = initParams(arch, 1);
  const lora: LoraConfig = { task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: resolveTargetModules(arch, ["all-linear"]), modules_to_save: null, fan_in_fan_out: false, use_rslora: false, base_model_name_or_path: null };
  const models = { arch: withAdapter(arch, lora), policy: initAdapter(arch, lora, base, 3), reference: base, frozen: base, adapter: lora, ...value };
  const config = { ...defaultPpoRunConfig, batch_size: 4, total_steps: 3, learning_rate: 3e-2, ptx_coef: 0, temperature: 1, response_length: 8, rollout_engine: "llama.cpp" as const };
  const trainer = new PpoTrainer({ config, models, tokenizer, prompts: PROMPTS, reward: shareOfE, eosIds: [2] });
  const b = "model.layers.0.self_attn.q_proj.lora_B.weight";
  for (let i = 0; i < 3; i++) {
    const { metrics } = await trainer.step();
    assert.ok(metrics["sampling/sampling_logp_difference/max"]! < 0.05, `step ${i + 1}: log-probs differ by ${metrics["sampling/sampling_logp_difference/max"]}`);
  }
  assert.ok((await toHost(trainer.policy[b]!.ref)).some((x) => x !== 0), "the adapter's B is still zero: the adapter sync was not exercised");
  await trainer.dispose();
});

test("PPO with --rollout_engine llama.cpp: truncated importance sampling reaches the policy loss (on and off differ by the weights' departure from 1 only)", async () => {
  const { tokenizer, arch, value } = await setup();
  const base = { ...defaultPpoRunConfig, batch_size: 4, total_steps: 1, learning_rate: 1e-2, ptx_coef: 0, temperature: 1, response_length: 8, rollout_engine: "llama.cpp" as const, num_ppo_epochs: 1 };
  const losses: number[] = [];
  let largestLogpDifference = 0;
  for (const correction of [true, false]) {
    const policy = initParams(arch, 1);
    const models = { arch, policy, reference: copyParams(policy), ...value, value: copyParams(value.value) };
    const trainer = new PpoTrainer({ config: { ...base, rollout_importance_sampling_correction: correction }, models, tokenizer, prompts: PROMPTS, reward: shareOfE, eosIds: [2] });
    const { metrics } = await trainer.step();
    losses.push(metrics["loss/policy_avg"]!);
    largestLogpDifference = Math.max(largestLogpDifference, metrics["sampling/sampling_logp_difference/max"]!);
    await trainer.dispose();
  }
  console.log(`loss/policy_avg with the correction ${losses[0]}, without ${losses[1]}`);
  // The same samples (same seed); at the first update ratio = 1, so the loss is −mean(w·A) over the
  // valid tokens with A whitened (|A| ≤ √n for n tokens, n ≤ 36 here): on and off differ by at most
  // 6·max|w − 1|, and w − 1 is within e^{max |Δ log p|} − 1 (~1e-2 with the F16 cache).
  assert.notEqual(losses[0], losses[1], "the weights did not reach the loss");
  assert.ok(Math.abs(losses[0]! - losses[1]!) <= 6 * (Math.exp(largestLogpDifference) - 1), `losses ${losses.join(" vs ")}, max |Δ log p| ${largestLogpDifference}`);
});

test("PPO with --rollout_dtype q8_0: llama.cpp samples with quantized weights, whose log-probs stray further from the trainer's than f32's, and the importance weights carry the difference", async () => {
  const { tokenizer, arch, value } = await setup();
  const differences: Record<string, number> = {};
  for (const rollout_dtype of ["f32", "q8_0"] as const) {
    const policy = initParams(arch, 1);
    const models = { arch, policy, reference: copyParams(policy), ...value, value: copyParams(value.value) };
    const config = { ...defaultPpoRunConfig, batch_size: 4, total_steps: 1, learning_rate: 1e-2, ptx_coef: 0, temperature: 1, response_length: 8, rollout_engine: "llama.cpp" as const, rollout_dtype, num_ppo_epochs: 1 };
    const trainer = new PpoTrainer({ config, models, tokenizer, prompts: PROMPTS, reward: shareOfE, eosIds: [2] });
    const { metrics } = await trainer.step();
    for (const [key, v] of Object.entries(metrics)) assert.ok(Number.isFinite(v), `${rollout_dtype}: ${key} = ${v}`);
    differences[rollout_dtype] = metrics["sampling/sampling_logp_difference/mean"]!;
    // The importance weights depart from 1 by about the log-prob differences.
    assert.ok(Math.abs(metrics["sampling/importance_sampling_ratio/mean"]! - 1) < 4 * metrics["sampling/sampling_logp_difference/max"]! + 1e-6);
    await trainer.dispose();
  }
  console.log(`mean |Δ log p| between llama.cpp's sampler and the trainer: f32 ${differences.f32}, q8_0 ${differences.q8_0}`);
  // q8_0 rounds each 32-weight block to 8 bits (the 48-wide rows stay f16): a larger mismatch than
  // the F16 KV cache alone gives f32 weights, yet small next to a log-prob (the samples stay usable).
  assert.ok(differences.q8_0! > 2 * differences.f32!, JSON.stringify(differences));
  assert.ok(differences.q8_0! < 0.1, JSON.stringify(differences));
});
