import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseConfig, type LlamaConfig } from "../models/config.ts";
import { loadHfDirectory, saveHfDirectory } from "./hf-dir.ts";
import { readLlama2c } from "./llama2c.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";
import type { TensorMap } from "./tensors.ts";
import { sharedData, tempDir } from "./test-helpers.ts";

const tinyLlama = (tied: boolean) =>
  parseConfig({
    model_type: "llama", hidden_size: 4, intermediate_size: 6, num_hidden_layers: 1, num_attention_heads: 2,
    vocab_size: 3, max_position_embeddings: 8, tie_word_embeddings: tied,
  }, "test") as LlamaConfig;

const t = (shape: number[], ...values: number[]) => ({ shape, data: Float32Array.from(values) });

test("llama2.c → saveHfDirectory → loadHfDirectory keeps every tensor and the config", async () => {
  const dir = join(await tempDir(), "stories");
  const { config, tensors } = await readLlama2c(sharedData("llama2c/stories260K.bin"));
  await saveHfDirectory(dir, config, tensors, { "generation_config.json": "{}\n" });
  assert.deepEqual((await readdir(dir)).sort(), ["config.json", "generation_config.json", "model.safetensors"]);

  const json = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
  assert.deepEqual(json.architectures, ["LlamaForCausalLM"]);
  assert.equal(json.model_type, "llama");
  assert.equal(json.torch_dtype, "float32");
  assert.equal(typeof json.transformers_version, "string");
  assert.equal((await readSafetensors(join(dir, "model.safetensors"))).metadata.format, "pt");

  const loaded = await loadHfDirectory(dir);
  assert.deepEqual(loaded.config, config);
  assert.deepEqual(loaded.configJson, json);
  assert.deepEqual([...loaded.tensors.keys()].sort(), [...tensors.keys()].sort());
  for (const [name, tensor] of tensors) assert.deepEqual(loaded.tensors.get(name), tensor, name);
});

test("tied embeddings: lm_head.weight is not written; untied: it is, and is required on load", async () => {
  const root = await tempDir();
  const tensors: TensorMap = new Map([["model.embed_tokens.weight", t([3, 1], 1, 2, 3)], ["lm_head.weight", t([3, 1], 4, 5, 6)]]);
  await saveHfDirectory(join(root, "tied"), tinyLlama(true), tensors);
  assert.deepEqual([...(await readSafetensors(join(root, "tied", "model.safetensors"))).tensors.keys()], ["model.embed_tokens.weight"]);
  await saveHfDirectory(join(root, "untied"), tinyLlama(false), tensors);
  assert.deepEqual((await loadHfDirectory(join(root, "untied"))).tensors.get("lm_head.weight"), tensors.get("lm_head.weight"));

  await writeSafetensors(join(root, "untied", "model.safetensors"), new Map([["model.embed_tokens.weight", t([3, 1], 1, 2, 3)]]));
  await assert.rejects(loadHfDirectory(join(root, "untied")), /tie_word_embeddings is false but the checkpoint has no lm_head\.weight/);
});

test("saving over an existing checkpoint replaces it whole and leaves no temp directories", async () => {
  const root = await tempDir();
  const dir = join(root, "ckpt");
  await saveHfDirectory(dir, tinyLlama(true), new Map([["a", t([1], 1)]]), { "stale.txt": "old" });
  await saveHfDirectory(dir, tinyLlama(true), new Map([["a", t([1], 2)]]));
  assert.deepEqual(await readdir(root), ["ckpt"]);
  assert.deepEqual((await readdir(dir)).sort(), ["config.json", "model.safetensors"]);
  assert.deepEqual(Array.from((await loadHfDirectory(dir)).tensors.get("a")!.data), [2]);
  await assert.rejects(saveHfDirectory(dir, tinyLlama(true), new Map(), { "config.json": "{}" }), /extraFiles must not contain config\.json/);
});

test("GPT-2 names without the transformer. prefix are normalised; mask buffers are dropped", async () => {
  const dir = await tempDir();
  await writeFile(join(dir, "config.json"), JSON.stringify({ model_type: "gpt2", n_embd: 2, n_head: 1, n_layer: 1, vocab_size: 3, n_positions: 4 }));
  await writeSafetensors(join(dir, "model.safetensors"), new Map([
    ["wte.weight", t([3, 2], 1, 2, 3, 4, 5, 6)],
    ["h.0.attn.c_attn.weight", t([2, 6], ...Array(12).fill(0.5))],
    ["h.0.attn.bias", t([1, 1, 4, 4], ...Array(16).fill(1))],
    ["h.0.attn.masked_bias", t([], -1e4)],
  ]));
  const { config, tensors } = await loadHfDirectory(dir);
  assert.equal(config.model_type, "gpt2");
  assert.deepEqual([...tensors.keys()].sort(), ["transformer.h.0.attn.c_attn.weight", "transformer.wte.weight"]);
});

test("sharded checkpoint directories load through the index", async () => {
  const dir = await tempDir();
  await writeFile(join(dir, "config.json"), JSON.stringify({ model_type: "llama", hidden_size: 4, num_attention_heads: 2, tie_word_embeddings: true }));
  await writeSafetensors(join(dir, "model-00001-of-00002.safetensors"), new Map([["model.norm.weight", t([4], 1, 1, 1, 1)]]));
  await writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), new Map([
    ["model.embed_tokens.weight", t([1, 4], 1, 2, 3, 4)],
    ["model.layers.0.self_attn.rotary_emb.inv_freq", t([1], 1)],
  ]));
  await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: {
    "model.norm.weight": "model-00001-of-00002.safetensors",
    "model.embed_tokens.weight": "model-00002-of-00002.safetensors",
  } }));
  const { tensors } = await loadHfDirectory(dir);
  assert.deepEqual([...tensors.keys()].sort(), ["model.embed_tokens.weight", "model.norm.weight"]);
});

test("clear errors for directories that are not checkpoints", async () => {
  const dir = await tempDir();
  await assert.rejects(loadHfDirectory(join(dir, "nope")), /not a Hugging Face checkpoint directory: .*nope\/config\.json not found/);
  await writeFile(join(dir, "config.json"), "{ not json");
  await assert.rejects(loadHfDirectory(dir), /config\.json: not valid JSON/);
  await writeFile(join(dir, "config.json"), JSON.stringify({ model_type: "bert" }));
  await assert.rejects(loadHfDirectory(dir), /config\.json: model_type "bert" is not supported/);
  await writeFile(join(dir, "config.json"), JSON.stringify({ model_type: "gpt2" }));
  await assert.rejects(loadHfDirectory(dir), /no model\.safetensors or model\.safetensors\.index\.json/);
  await writeFile(join(dir, "pytorch_model.bin"), "PK");
  await assert.rejects(loadHfDirectory(dir), /only pytorch_model\.bin \(pickle\) found/);
});
