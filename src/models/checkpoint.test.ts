// Checkpoints as the Hugging Face ecosystem writes them: tied embeddings under either name or both,
// safetensors metadata aliases, GPT-2 keys with or without `transformer.` and its mask buffers,
// sharded files, generation_config.json's stop tokens; and what we write is what transformers writes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { release, toHost } from "../engine/arrays.ts";
import { eosIdsOf } from "../generation/eos.ts";
import { writeHfDirectory } from "../io/hf-dir.ts";
import { readLlama2c } from "../io/llama2c.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import type { TensorMap } from "../io/tensors.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { architectureFor } from "./architecture.ts";
import { checkpointFromParameters, configToJson, parametersFromCheckpoint } from "./checkpoint.ts";
import { parseConfig, type ModelConfig } from "./config.ts";
import { loadModel, saveModel } from "./load.ts";
import { initParams, paramsToTensors } from "./params.ts";

const t = (shape: number[], ...values: number[]) => ({ shape, data: Float32Array.from(values) });
const llama = (tied: boolean) => parseConfig({
  model_type: "llama", hidden_size: 4, intermediate_size: 6, num_hidden_layers: 1, num_attention_heads: 2,
  vocab_size: 3, max_position_embeddings: 8, tie_word_embeddings: tied,
}, "llama");
const gpt2 = (tied: boolean) => parseConfig({ model_type: "gpt2", n_embd: 2, n_head: 1, n_layer: 1, vocab_size: 3, n_positions: 4, tie_word_embeddings: tied }, "gpt2");
const names = (m: TensorMap) => [...m.keys()].sort();
const EMBED = t([3, 1], 1, 2, 3);
const HEAD = t([3, 1], 4, 5, 6);

test("tied embeddings stored as the embedding, as lm_head.weight (tinystories-656k), or both: the embedding wins", () => {
  const c = llama(true);
  const asEmbedding = parametersFromCheckpoint(c, new Map([["model.embed_tokens.weight", EMBED]]), {}, "ckpt");
  assert.deepEqual(names(asEmbedding), ["model.embed_tokens.weight"]);
  const asHead = parametersFromCheckpoint(c, new Map([["lm_head.weight", HEAD]]), {}, "ckpt");
  assert.deepEqual([...asHead], [["model.embed_tokens.weight", HEAD]]);
  const both = parametersFromCheckpoint(c, new Map([["lm_head.weight", HEAD], ["model.embed_tokens.weight", EMBED]]), {}, "ckpt");
  assert.deepEqual([...both], [["model.embed_tokens.weight", EMBED]], "transformers ties the head to the embedding");
  const gpt = parametersFromCheckpoint(gpt2(true), new Map([["lm_head.weight", HEAD]]), {}, "ckpt");
  assert.deepEqual([...gpt], [["transformer.wte.weight", HEAD]]);
});

test("safetensors metadata aliases {dropped: kept} are followed; other metadata is ignored", () => {
  const stored = new Map([["lm_head.weight", HEAD], ["model.norm.weight", t([4], 1, 1, 1, 1)]]);
  const untied = parametersFromCheckpoint(llama(false), stored, { format: "pt", "model.embed_tokens.weight": "lm_head.weight" }, "ckpt");
  assert.deepEqual(names(untied), ["lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"]);
  assert.equal(untied.get("model.embed_tokens.weight"), HEAD);
  const unrelated = parametersFromCheckpoint(llama(false), stored, { format: "pt", note: "lm_head.weight is great" }, "ckpt");
  assert.deepEqual(names(unrelated), ["lm_head.weight", "model.norm.weight"]);
});

test("untied causal LMs need lm_head.weight; sequence classifiers do not", () => {
  assert.throws(() => parametersFromCheckpoint(llama(false), new Map([["model.embed_tokens.weight", EMBED]]), {}, "ckpt"),
    (err: Error) => err.name === "InputError" && /^ckpt: tie_word_embeddings is false but the checkpoint has no lm_head\.weight$/.test(err.message));
  const rm = parseConfig({ ...configToJson(llama(false)), architectures: ["LlamaForSequenceClassification"], num_labels: 1 }, "rm");
  assert.deepEqual(names(parametersFromCheckpoint(rm, new Map([["model.embed_tokens.weight", EMBED], ["score.weight", t([1, 4], 0, 0, 0, 0)]]), {}, "rm")),
    ["model.embed_tokens.weight", "score.weight"]);
});

test("GPT-2 keys with or without transformer., with or without the attn.bias / attn.masked_bias buffers, lm_head absent", () => {
  const hub = new Map([
    ["wte.weight", t([3, 2], 1, 2, 3, 4, 5, 6)],
    ["h.0.attn.c_attn.weight", t([2, 6], ...Array(12).fill(0.5))],
    ["h.0.attn.bias", t([1, 1, 4, 4], ...Array(16).fill(1))],
    ["h.0.attn.masked_bias", t([], -1e4)],
  ]);
  assert.deepEqual(names(parametersFromCheckpoint(gpt2(true), hub, { format: "pt" }, "gpt2")), ["transformer.h.0.attn.c_attn.weight", "transformer.wte.weight"]);
  const prefixed = new Map([["transformer.wte.weight", EMBED], ["transformer.h.0.attn.bias", t([1], 1)], ["score.weight", t([1, 1], 1)]]);
  assert.deepEqual(names(parametersFromCheckpoint(gpt2(true), prefixed, {}, "gpt2")), ["score.weight", "transformer.wte.weight"]);
  const llamaBuffers = new Map([["model.embed_tokens.weight", EMBED], ["model.layers.0.self_attn.rotary_emb.inv_freq", t([1], 1)]]);
  assert.deepEqual(names(parametersFromCheckpoint(llama(true), llamaBuffers, {}, "llama")), ["model.embed_tokens.weight"]);
});

test("writing: a tied causal LM stores its embedding once, the alias in metadata; untied and classifiers store what they have", () => {
  const tied = checkpointFromParameters(llama(true), new Map([["model.embed_tokens.weight", EMBED], ["lm_head.weight", EMBED]]));
  assert.deepEqual(names(tied.tensors), ["model.embed_tokens.weight"]);
  assert.deepEqual(tied.metadata, { format: "pt", "lm_head.weight": "model.embed_tokens.weight" });
  assert.deepEqual(checkpointFromParameters(gpt2(true), new Map([["transformer.wte.weight", EMBED]])).metadata, { format: "pt", "lm_head.weight": "transformer.wte.weight" });
  const untied = checkpointFromParameters(llama(false), new Map([["model.embed_tokens.weight", EMBED], ["lm_head.weight", HEAD]]));
  assert.deepEqual(names(untied.tensors), ["lm_head.weight", "model.embed_tokens.weight"]);
  assert.deepEqual(untied.metadata, { format: "pt" });
  const rm = parseConfig({ ...configToJson(llama(true)), architectures: ["LlamaForSequenceClassification"], num_labels: 1 }, "rm");
  assert.deepEqual(checkpointFromParameters(rm, new Map([["model.embed_tokens.weight", EMBED]])).metadata, { format: "pt" });
});

test("llama2.c → saveModel → loadModel: every weight, the config, a tied head stored once", async () => {
  const dir = join(await tempDir(), "stories");
  const file = await readLlama2c(sharedData("llama2c/stories260K.bin"));
  const config = parseConfig(file.config, "stories260K.bin");
  const arch = architectureFor(config);
  const model = await loadModel(sharedData("llama2c/stories260K.bin"));
  await saveModel(dir, model.config, model.params);
  const json = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
  assert.deepEqual([json.model_type, json.architectures, json.torch_dtype, typeof json.transformers_version], ["llama", ["LlamaForCausalLM"], "float32", "string"]);
  const stored = await readSafetensors(join(dir, "model.safetensors"));
  assert.deepEqual(stored.metadata, { format: "pt", "lm_head.weight": "model.embed_tokens.weight" });
  assert.ok(!stored.tensors.has("lm_head.weight"));
  const reloaded = await loadModel(dir);
  assert.deepEqual(reloaded.config, config);
  assert.deepEqual(Object.keys(reloaded.params).sort(), Object.keys(arch.paramShapes).sort());
  const before = await paramsToTensors(model.params);
  const after = await paramsToTensors(reloaded.params);
  for (const [name, tensor] of before) assert.deepEqual(after.get(name), tensor, name);
  release([model.params, reloaded.params]);
});

/** A one-layer model of `config` written with `store` deciding the stored names. */
async function writeCheckpoint(dir: string, config: ModelConfig, store: (tensors: TensorMap) => { tensors: TensorMap; metadata?: Record<string, string> }) {
  const params = initParams(architectureFor(config), 5);
  const tensors = await paramsToTensors(params);
  release(params);
  const { tensors: stored, metadata } = store(tensors);
  await writeHfDirectory(dir, configToJson(config), stored, metadata ? { metadata } : {});
  return tensors;
}

test("loadModel: a sharded tied checkpoint whose embedding is stored as lm_head.weight in the second shard", async () => {
  const dir = await tempDir();
  const config = llama(true);
  const params = initParams(architectureFor(config), 5);
  const tensors = await paramsToTensors(params);
  release(params);
  const shard1 = new Map([...tensors].filter(([k]) => k !== "model.embed_tokens.weight"));
  const shard2 = new Map([["lm_head.weight", tensors.get("model.embed_tokens.weight")!]]);
  await writeFile(join(dir, "config.json"), JSON.stringify(configToJson(config)));
  await writeSafetensors(join(dir, "model-00001-of-00002.safetensors"), shard1, { metadata: { format: "pt" } });
  await writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), shard2, { metadata: { format: "pt", "model.embed_tokens.weight": "lm_head.weight" } });
  const weightMap = Object.fromEntries([...[...shard1.keys()].map((k) => [k, "model-00001-of-00002.safetensors"]), ["lm_head.weight", "model-00002-of-00002.safetensors"]]);
  await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  const model = await loadModel(dir);
  assert.deepEqual(await toHost(model.params["model.embed_tokens.weight"]!.ref), tensors.get("model.embed_tokens.weight")!.data);
  release(model.params);
});

test("loadModel: bad weights are refused in one line naming the checkpoint and the tensors", async () => {
  const dir = await tempDir();
  const config = llama(false);
  await writeCheckpoint(dir, config, (tensors) => {
    const wrong = new Map(tensors);
    wrong.delete("model.norm.weight");
    wrong.set("lm_head.weight", t([1, 4], 1, 2, 3, 4));
    return { tensors: wrong };
  });
  const err = await loadModel(dir).then(() => null, (e: Error) => e);
  assert.ok(err);
  assert.equal(err.name, "InputError");
  assert.match(err.message, /the weights do not match the LlamaForCausalLM config: .*missing model\.norm\.weight \[4\].*lm_head\.weight has shape \[1, 4\], expected \[3, 4\]/);
  assert.equal(err.message.split("\n").length, 1);
});

test("generation_config.json's eos_token_id list joins the stop tokens; a bad one is refused naming the field", async () => {
  const dir = await tempDir();
  const config = parseConfig({ ...configToJson(llama(true)), eos_token_id: 2 }, "x");
  await writeCheckpoint(dir, config, (tensors) => ({ tensors }));
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: [0, 2], do_sample: true }));
  const model = await loadModel(dir);
  assert.deepEqual(eosIdsOf(model).sort(), [0, 2]);
  const out = join(await tempDir(), "converted");
  await saveModel(out, model.config, model.params, { generationConfig: model.generationConfig! });
  assert.deepEqual(JSON.parse(await readFile(join(out, "generation_config.json"), "utf8")), { bos_token_id: 1, eos_token_id: [0, 2], do_sample: true });
  release(model.params);
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: "</s>" }));
  await assert.rejects(loadModel(dir), (e: Error) => e.name === "InputError" && /generation_config\.json: eos_token_id must be a token id/.test(e.message));
});
