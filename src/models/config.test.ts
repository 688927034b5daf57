import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { architectureFor } from "./architecture.ts";
import { isSequenceClassifier, parseConfig } from "./config.ts";
import type { GPT2Config } from "./gpt2.ts";
import { llamaHeadDim, type LlamaConfig } from "./llama.ts";
import type { Qwen2Config } from "./qwen2.ts";

// The hub's openai-community/gpt2 config.json, trimmed of task-specific fields.
const GPT2_HUB = {
  activation_function: "gelu_new", architectures: ["GPT2LMHeadModel"], attn_pdrop: 0.1, bos_token_id: 50256,
  embd_pdrop: 0.1, eos_token_id: 50256, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: "gpt2",
  n_ctx: 1024, n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, resid_pdrop: 0.1, vocab_size: 50257,
};

const TINY_LLAMA = {
  model_type: "llama", hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8,
  num_key_value_heads: 4, vocab_size: 512, max_position_embeddings: 512,
};

test("llama: fills transformers' defaults", () => {
  const c = parseConfig(TINY_LLAMA, "tiny/config.json") as LlamaConfig;
  assert.deepEqual(c, {
    ...TINY_LLAMA, architectures: ["LlamaForCausalLM"], head_dim: 8, rms_norm_eps: 1e-6, rope_theta: 10000,
    tie_word_embeddings: false, hidden_act: "silu", bos_token_id: 1, eos_token_id: 2,
  });
  const noKv = parseConfig({ ...TINY_LLAMA, num_key_value_heads: undefined }, "x") as LlamaConfig;
  assert.equal(noKv.num_key_value_heads, 8);
  const llama3 = parseConfig({ ...TINY_LLAMA, eos_token_id: [128001, 128009], torch_dtype: "bfloat16", head_dim: null }, "x") as LlamaConfig;
  assert.deepEqual(llama3.eos_token_id, [128001, 128009]);
  assert.equal(llama3.torch_dtype, "bfloat16");
  assert.equal(llamaHeadDim(llama3), 8);
  assert.equal((parseConfig({ ...TINY_LLAMA, dtype: "float16" }, "x") as LlamaConfig).torch_dtype, "float16");
  assert.equal(llamaHeadDim({ ...c, head_dim: undefined }), 8);
});

test("gpt2: the hub config gets n_inner = 4 * n_embd, tied embeddings and scaled attention", () => {
  const c = parseConfig(GPT2_HUB, "gpt2/config.json") as GPT2Config;
  assert.equal(c.model_type, "gpt2");
  assert.equal(c.n_inner, 3072);
  assert.equal(c.tie_word_embeddings, true);
  assert.equal(c.scale_attn_weights, true);
  assert.equal(c.activation_function, "gelu_new");
  assert.deepEqual([c.vocab_size, c.n_positions, c.n_embd, c.n_layer, c.n_head], [50257, 1024, 768, 12, 12]);
  assert.equal((parseConfig({ ...GPT2_HUB, n_inner: null }, "x") as GPT2Config).n_inner, 3072);
  assert.equal((parseConfig({ ...GPT2_HUB, n_inner: 100 }, "x") as GPT2Config).n_inner, 100);
  assert.equal((parseConfig({ ...GPT2_HUB, activation_function: "gelu_pytorch_tanh" }, "x") as GPT2Config).activation_function, "gelu_new");
  assert.equal((parseConfig({ ...GPT2_HUB, activation_function: "gelu" }, "x") as GPT2Config).activation_function, "gelu");
  assert.equal((parseConfig({ model_type: "gpt2" }, "x") as GPT2Config).n_layer, 12);
});

test("sequence classification fields", () => {
  const rm = parseConfig({ ...TINY_LLAMA, architectures: ["LlamaForSequenceClassification"], pad_token_id: 0 }, "rm") as LlamaConfig;
  assert.ok(isSequenceClassifier(rm));
  assert.equal(rm.num_labels, 2); // transformers' default
  assert.equal(rm.pad_token_id, 0);
  const one = parseConfig({ ...GPT2_HUB, architectures: ["GPT2ForSequenceClassification"], id2label: { 0: "LABEL_0" }, label2id: { LABEL_0: 0 } }, "rm");
  assert.equal(one.num_labels, 1);
  assert.deepEqual(one.id2label, { 0: "LABEL_0" });
  assert.deepEqual(one.label2id, { LABEL_0: 0 });
  const lm = parseConfig(TINY_LLAMA, "x");
  assert.ok(!isSequenceClassifier(lm));
  assert.equal("num_labels" in lm, false);
  assert.throws(() => parseConfig({ ...TINY_LLAMA, num_labels: 3, id2label: { 0: "a" } }, "rm/config.json"),
    /rm\/config\.json: num_labels = 3 but id2label has 1 entries/);
  assert.throws(() => parseConfig({ ...TINY_LLAMA, id2label: { a: "b" } }, "f"), /f: id2label must map label indices/);
});

test("rejects what the implementations do not support, naming file and field", () => {
  const rejects = (json: Record<string, unknown>, pattern: RegExp) => assert.throws(() => parseConfig(json, "ckpt/config.json"), pattern);
  rejects({ ...TINY_LLAMA, model_type: "mistral" }, /ckpt\/config\.json: model_type "mistral" is not supported/);
  rejects({ hidden_size: 4 }, /ckpt\/config\.json: model_type is missing/);
  rejects({ ...TINY_LLAMA, rope_scaling: { type: "linear", factor: 2 } }, /ckpt\/config\.json: rope_scaling = .* is not supported/);
  rejects({ ...TINY_LLAMA, hidden_act: "gelu" }, /hidden_act = "gelu" is not supported/);
  rejects({ ...TINY_LLAMA, attention_bias: true }, /attention_bias = true is not supported/);
  rejects({ ...TINY_LLAMA, sliding_window: 4096 }, /sliding_window = 4096 is not supported/);
  rejects({ ...TINY_LLAMA, hidden_size: 64.5 }, /hidden_size must be an integer >= 1, got 64.5/);
  rejects({ ...TINY_LLAMA, num_hidden_layers: "5" }, /num_hidden_layers must be an integer/);
  rejects({ ...TINY_LLAMA, num_attention_heads: 6 }, /num_attention_heads = 6 must divide hidden_size = 64/);
  rejects({ ...TINY_LLAMA, num_key_value_heads: 3 }, /num_key_value_heads = 3 must divide num_attention_heads = 8/);
  rejects({ ...TINY_LLAMA, head_dim: 16 }, /head_dim = 16 times 8 heads must equal hidden_size = 64/);
  rejects({ ...TINY_LLAMA, rms_norm_eps: -1 }, /rms_norm_eps must be a positive number/);
  rejects({ ...TINY_LLAMA, architectures: ["LlamaForTokenClassification"] }, /architectures contains "LlamaForTokenClassification"; supported: LlamaForCausalLM/);
  rejects({ ...GPT2_HUB, activation_function: "relu" }, /activation_function = "relu" is not supported/);
  rejects({ ...GPT2_HUB, n_head: 7 }, /n_head = 7 must divide n_embd = 768/);
  rejects({ ...GPT2_HUB, scale_attn_by_inverse_layer_idx: true }, /scale_attn_by_inverse_layer_idx = true is not supported/);
  rejects({ ...GPT2_HUB, tie_word_embeddings: "yes" }, /tie_word_embeddings must be true or false/);
  assert.throws(() => parseConfig([], "arr.json"), /arr\.json: expected a JSON object/);
});

// config.json files as transformers wrote them on the Hub (every field, in the files' order).
const LLAMA_3_2_1B_INSTRUCT = {
  architectures: ["LlamaForCausalLM"], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009], head_dim: 64, hidden_act: "silu", hidden_size: 2048, initializer_range: 0.02,
  intermediate_size: 8192, max_position_embeddings: 131072, mlp_bias: false, model_type: "llama", num_attention_heads: 32,
  num_hidden_layers: 16, num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
  rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: "bfloat16", transformers_version: "4.45.0.dev0", use_cache: true, vocab_size: 128256,
};
const TINYLLAMA_1_1B_CHAT = {
  architectures: ["LlamaForCausalLM"], attention_bias: false, bos_token_id: 1, eos_token_id: 2, hidden_act: "silu", hidden_size: 2048,
  initializer_range: 0.02, intermediate_size: 5632, max_position_embeddings: 2048, model_type: "llama", num_attention_heads: 32,
  num_hidden_layers: 22, num_key_value_heads: 4, pretraining_tp: 1, rms_norm_eps: 1e-5, rope_scaling: null, rope_theta: 10000.0,
  tie_word_embeddings: false, torch_dtype: "bfloat16", transformers_version: "4.35.0", use_cache: true, vocab_size: 32000,
};
const QWEN2_5_7B = {
  architectures: ["Qwen2ForCausalLM"], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643, hidden_act: "silu",
  hidden_size: 3584, initializer_range: 0.02, intermediate_size: 18944, max_position_embeddings: 131072, max_window_layers: 28,
  model_type: "qwen2", num_attention_heads: 28, num_hidden_layers: 28, num_key_value_heads: 4, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
  sliding_window: 131072, tie_word_embeddings: false, torch_dtype: "bfloat16", transformers_version: "4.43.1", use_cache: true,
  use_mrope: false, use_sliding_window: false, vocab_size: 152064,
};
const shipped = (name: string) => JSON.parse(readFileSync(new URL(`../../configs/${name}`, import.meta.url), "utf8")) as Record<string, unknown>;

test("Llama 3.2 (rope_scaling llama3, eos list, head_dim), SmolLM2 and TinyLlama configs load", () => {
  const l3 = parseConfig(LLAMA_3_2_1B_INSTRUCT, "Llama-3.2-1B-Instruct/config.json") as LlamaConfig;
  assert.deepEqual(l3.rope_scaling, { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
  assert.deepEqual(l3.eos_token_id, [128001, 128008, 128009]);
  const a3 = architectureFor(l3);
  assert.deepEqual([a3.hiddenSize, a3.numLayers, a3.numKvHeads, a3.headDim, a3.vocabSize, a3.maxPositions, a3.lmHeadName], [2048, 16, 8, 64, 128256, 131072, "model.embed_tokens.weight"]);
  const legacyKey = parseConfig({ ...LLAMA_3_2_1B_INSTRUCT, rope_scaling: { ...LLAMA_3_2_1B_INSTRUCT.rope_scaling, rope_type: undefined, type: "llama3" } }, "x") as LlamaConfig;
  assert.deepEqual(legacyKey.rope_scaling, l3.rope_scaling, "the older key `type` names the rope type too");
  assert.equal((parseConfig({ ...TINY_LLAMA, rope_scaling: { rope_type: "default" } }, "x") as LlamaConfig).rope_scaling, undefined);

  const smol = architectureFor(parseConfig(shipped("smollm2-135m.json"), "SmolLM2-135M/config.json"));
  assert.deepEqual([smol.hiddenSize, smol.numLayers, smol.numKvHeads, smol.headDim, smol.vocabSize, smol.lmHeadName], [576, 30, 3, 64, 49152, "model.embed_tokens.weight"]);
  assert.equal((smol.config as LlamaConfig).rope_theta, 100000);
  const tiny = architectureFor(parseConfig(TINYLLAMA_1_1B_CHAT, "TinyLlama/config.json"));
  assert.deepEqual([tiny.hiddenSize, tiny.numLayers, tiny.numKvHeads, tiny.headDim, tiny.vocabSize, tiny.lmHeadName], [2048, 22, 4, 64, 32000, "lm_head.weight"]);
});

test("Qwen2.5 configs load: biased q/k/v, rope_theta 1e6, tied (0.5B) or untied (7B), sliding window off", () => {
  const small = parseConfig(shipped("qwen2.5-0.5b.json"), "Qwen2.5-0.5B/config.json") as Qwen2Config;
  assert.deepEqual([small.rope_theta, small.tie_word_embeddings, small.use_sliding_window, small.sliding_window, small.max_window_layers], [1e6, true, false, 32768, 24]);
  const a = architectureFor(small);
  assert.deepEqual([a.hiddenSize, a.numLayers, a.numKvHeads, a.headDim, a.vocabSize, a.maxPositions, a.lmHeadName], [896, 24, 2, 64, 151936, 32768, "model.embed_tokens.weight"]);
  assert.deepEqual(a.paramShapes["model.layers.0.self_attn.k_proj.bias"], [128]);
  assert.deepEqual(a.paramShapes["model.layers.0.self_attn.q_proj.bias"], [896]);
  assert.equal(a.paramShapes["model.layers.0.self_attn.o_proj.bias"], undefined);
  assert.equal(a.paramShapes["lm_head.weight"], undefined);
  const big = architectureFor(parseConfig(QWEN2_5_7B, "Qwen2.5-7B/config.json"));
  assert.deepEqual(big.paramShapes["lm_head.weight"], [152064, 3584]);
  assert.equal(big.lmHeadName, "lm_head.weight");
  const rm = parseConfig({ ...QWEN2_5_7B, architectures: ["Qwen2ForSequenceClassification"], num_labels: 1, pad_token_id: 151643 }, "rm");
  assert.deepEqual(architectureFor(rm).paramShapes["score.weight"], [1, 3584]);
  assert.equal(architectureFor(rm).paramShapes["lm_head.weight"], undefined);
  const defaults = parseConfig({ model_type: "qwen2" }, "x") as Qwen2Config;
  assert.deepEqual([defaults.vocab_size, defaults.hidden_size, defaults.num_key_value_heads, defaults.rope_theta, defaults.tie_word_embeddings, defaults.bos_token_id],
    [151936, 4096, 32, 10000, false, null], "transformers' Qwen2Config defaults");
});

test("refusals for settings the Qwen2 and Llama 3 implementations do not honour", () => {
  const rejects = (json: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(() => parseConfig(json, "ckpt/config.json"), (err: Error) => err.name === "InputError" && pattern.test(err.message) && !err.message.includes("\n"));
  rejects({ ...QWEN2_5_7B, use_sliding_window: true }, /ckpt\/config\.json: use_sliding_window = true is not supported \(attention is full causal; sliding-window attention is not implemented\)/);
  rejects({ ...QWEN2_5_7B, layer_types: ["full_attention", "sliding_attention"] }, /layer_types = .* is not supported/);
  rejects({ ...QWEN2_5_7B, head_dim: 64 }, /head_dim = 64 is not supported \(Qwen2's head_dim is hidden_size \/ num_attention_heads = 128\)/);
  rejects({ ...QWEN2_5_7B, rope_scaling: { type: "yarn", factor: 4, original_max_position_embeddings: 32768 } }, /rope_scaling = .*"yarn".* is not supported \(implemented: plain RoPE and rope_type "llama3"\)/);
  rejects({ ...QWEN2_5_7B, architectures: ["Qwen2ForTokenClassification"] }, /architectures contains "Qwen2ForTokenClassification"; supported: Qwen2ForCausalLM, Qwen2ForSequenceClassification, Qwen2Model/);
  rejects({ ...LLAMA_3_2_1B_INSTRUCT, rope_scaling: { rope_type: "dynamic", factor: 2 } }, /rope_scaling = .* is not supported/);
  const scaling = LLAMA_3_2_1B_INSTRUCT.rope_scaling;
  rejects({ ...LLAMA_3_2_1B_INSTRUCT, rope_scaling: { ...scaling, low_freq_factor: undefined } }, /ckpt\/config\.json: rope_scaling: low_freq_factor is required for rope_type "llama3"/);
  rejects({ ...LLAMA_3_2_1B_INSTRUCT, rope_scaling: { ...scaling, high_freq_factor: 1 } }, /rope_scaling: high_freq_factor = 1 must be larger than low_freq_factor = 1/);
  rejects({ ...LLAMA_3_2_1B_INSTRUCT, rope_scaling: { ...scaling, factor: -2 } }, /rope_scaling: factor must be a positive number/);
  rejects({ ...LLAMA_3_2_1B_INSTRUCT, eos_token_id: [] }, /eos_token_id must be a token id, a non-empty list of token ids, or null/);
  rejects({ ...GPT2_HUB, scale_attn_weights: false }, /scale_attn_weights = false is not supported/);
  rejects({ model_type: "mistral" }, /model_type "mistral" is not supported \(supported: "llama", "gpt2", "qwen2"\)/);
});
