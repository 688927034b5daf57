// A converted stories260K directory loads back with identical weights and logits; bad checkpoints
// and bad configs fail with messages that say what is wrong.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { loadModel, resolveTokenizer, saveModel } from "./load.ts";
import { logitsOf } from "./test-helpers.ts";

test("stories260K converted to a Hugging Face directory reloads with identical logits and tokenizer", async () => {
  const original = await loadModel(sharedData("llama2c/stories260K.bin"));
  const tok = await resolveTokenizer(original);
  const dir = join(await tempDir(), "stories260K-hf");
  await saveModel(dir, original.config, original.params, { tokenizer: tok });
  const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
  assert.equal(config.model_type, "llama");
  assert.deepEqual(config.architectures, ["LlamaForCausalLM"]);
  const reloaded = await loadModel(dir);
  const ids = tok.encode("Once upon a time, there was a dog");
  assert.deepEqual(await logitsOf(reloaded, ids), await logitsOf(original, ids));
  const tok2 = await resolveTokenizer(reloaded);
  assert.deepEqual(tok2.encode("The little dog ran."), tok.encode("The little dog ran."));
});

test("bad checkpoints are refused with a clear message", async () => {
  const dir = await tempDir();
  await assert.rejects(loadModel(join(dir, "nope.bin")), /not found: .*nope\.bin/);
  const bytes = await readFile(sharedData("llama2c/stories260K.bin"));
  const truncated = join(dir, "truncated.bin");
  await writeFile(truncated, bytes.subarray(0, bytes.length - 1000));
  await assert.rejects(loadModel(truncated), /truncated\.bin.*(bytes|size)/s);
  const unsupported = join(dir, "unsupported");
  await mkdir(unsupported);
  await writeFile(join(unsupported, "config.json"), JSON.stringify({ model_type: "mistral", architectures: ["MistralForCausalLM"] }));
  await assert.rejects(loadModel(unsupported), /model_type/);
  const scaled = join(dir, "scaled");
  await mkdir(scaled);
  const cfg = { model_type: "llama", architectures: ["LlamaForCausalLM"], vocab_size: 32, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 16, rope_scaling: { type: "linear", factor: 2 } };
  await writeFile(join(scaled, "config.json"), JSON.stringify(cfg));
  await assert.rejects(loadModel(scaled), /rope_scaling/);
});
