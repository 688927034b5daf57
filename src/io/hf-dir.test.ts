// Hugging Face directories as files: what is written is read back as it was (names, metadata,
// config.json), sharded checkpoints load through their index, and what is not a checkpoint we can
// read is refused in one line naming the file. What the names mean is tested in models/checkpoint.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readGenerationConfigJson, readHfDirectory, writeHfDirectory } from "./hf-dir.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";
import type { TensorMap } from "./tensors.ts";
import { tempDir } from "./test-helpers.ts";

const t = (shape: number[], ...values: number[]) => ({ shape, data: Float32Array.from(values) });
const CONFIG = { architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4 };

test("writeHfDirectory → readHfDirectory keeps config.json, every tensor and the safetensors metadata", async () => {
  const dir = join(await tempDir(), "ckpt");
  const tensors: TensorMap = new Map([["model.embed_tokens.weight", t([3, 1], 1, 2, 3)], ["model.norm.weight", t([1], 4)]]);
  const metadata = { format: "pt", "lm_head.weight": "model.embed_tokens.weight" };
  await writeHfDirectory(dir, CONFIG, tensors, { metadata, extraFiles: { "generation_config.json": "{\"eos_token_id\": [2, 3]}\n" } });
  assert.deepEqual((await readdir(dir)).sort(), ["config.json", "generation_config.json", "model.safetensors"]);
  assert.deepEqual(JSON.parse(await readFile(join(dir, "config.json"), "utf8")), CONFIG);
  assert.deepEqual((await readSafetensors(join(dir, "model.safetensors"))).metadata, metadata);

  const read = await readHfDirectory(dir);
  assert.deepEqual(read.configJson, CONFIG);
  assert.deepEqual(read.metadata, metadata);
  assert.deepEqual(read.tensors, tensors);
  assert.deepEqual(await readGenerationConfigJson(dir), { eos_token_id: [2, 3] });
  await writeHfDirectory(dir, CONFIG, tensors);
  assert.equal(await readGenerationConfigJson(dir), null, "generation_config.json is optional");
  assert.deepEqual((await readHfDirectory(dir)).metadata, { format: "pt" }, "the default metadata is transformers' {format: pt}");
});

test("saving over an existing checkpoint replaces it whole and leaves no temp directories", async () => {
  const root = await tempDir();
  const dir = join(root, "ckpt");
  await writeHfDirectory(dir, CONFIG, new Map([["a", t([1], 1)]]), { extraFiles: { "stale.txt": "old" } });
  await writeHfDirectory(dir, CONFIG, new Map([["a", t([1], 2)]]));
  assert.deepEqual(await readdir(root), ["ckpt"]);
  assert.deepEqual((await readdir(dir)).sort(), ["config.json", "model.safetensors"]);
  assert.deepEqual(Array.from((await readHfDirectory(dir)).tensors.get("a")!.data), [2]);
  await assert.rejects(writeHfDirectory(dir, CONFIG, new Map(), { extraFiles: { "config.json": "{}" } }), /extraFiles must not contain config\.json/);
});

test("sharded checkpoint directories load through model.safetensors.index.json, metadata merged", async () => {
  const dir = await tempDir();
  await writeFile(join(dir, "config.json"), JSON.stringify(CONFIG));
  await writeSafetensors(join(dir, "model-00001-of-00002.safetensors"), new Map([["model.norm.weight", t([4], 1, 1, 1, 1)]]), { metadata: { format: "pt" } });
  await writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), new Map([["model.embed_tokens.weight", t([1, 4], 1, 2, 3, 4)]]), {
    metadata: { format: "pt", "lm_head.weight": "model.embed_tokens.weight" },
  });
  await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 32 }, weight_map: {
    "model.norm.weight": "model-00001-of-00002.safetensors",
    "model.embed_tokens.weight": "model-00002-of-00002.safetensors",
  } }));
  const { tensors, metadata } = await readHfDirectory(dir);
  assert.deepEqual([...tensors.keys()].sort(), ["model.embed_tokens.weight", "model.norm.weight"]);
  assert.deepEqual(metadata, { format: "pt", "lm_head.weight": "model.embed_tokens.weight" });
});

test("what is not a checkpoint we read is refused in one line naming the file (an input error, printed without a stack)", async () => {
  const dir = await tempDir();
  const refused = async (pattern: RegExp) => {
    const err = await readHfDirectory(dir).then(() => null, (e: Error) => e);
    assert.ok(err, "expected a refusal");
    assert.match(err.message, pattern);
    assert.equal(err.name, "InputError");
    assert.equal(err.message.split("\n").length, 1, err.message);
  };
  const missing = join(dir, "nope");
  await assert.rejects(readHfDirectory(missing), /not a Hugging Face checkpoint directory: .*nope\/config\.json not found/);
  await writeFile(join(dir, "config.json"), "{ not json");
  await refused(/config\.json: not valid JSON/);
  await writeFile(join(dir, "config.json"), JSON.stringify({ model_type: "gpt2" }));
  await refused(/no model\.safetensors or model\.safetensors\.index\.json/);
  await writeFile(join(dir, "pytorch_model.bin"), "PK");
  await refused(/only pytorch_model\.bin \(pickle\) found.*save_pretrained\(dir, safe_serialization=True\).*model\.safetensors/);
  await writeFile(join(dir, "generation_config.json"), "[1]");
  await assert.rejects(readGenerationConfigJson(dir), /generation_config\.json: expected a JSON object$/);
  await writeFile(join(dir, "generation_config.json"), "\ufeff" + JSON.stringify({ eos_token_id: 2 }));
  assert.deepEqual(await readGenerationConfigJson(dir), { eos_token_id: 2 }, "a byte-order mark (Windows editors) is accepted");
});
