import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { detectCheckpoint } from "./detect.ts";
import { sharedData, tempDir } from "./test-helpers.ts";

test("detects llama2.c files and Hugging Face directories, refuses the rest clearly", async () => {
  const dir = await tempDir();
  assert.equal(await detectCheckpoint(sharedData("llama2c/stories260K.bin")), "llama2c");

  await mkdir(join(dir, "hf"));
  await assert.rejects(detectCheckpoint(join(dir, "hf")), /hf: a directory without config\.json is not a Hugging Face checkpoint/);
  await writeFile(join(dir, "hf", "config.json"), "{}");
  assert.equal(await detectCheckpoint(join(dir, "hf")), "hf-dir");
  await writeFile(join(dir, "hf", "model.safetensors"), "");
  await assert.rejects(detectCheckpoint(join(dir, "hf", "model.safetensors")), /pass the checkpoint directory that contains this file/);

  await assert.rejects(detectCheckpoint(join(dir, "missing.bin")), /checkpoint not found: .*missing\.bin/);
  await writeFile(join(dir, "pytorch_model.bin"), Buffer.from("PK\x03\x04 a zip archive, as torch.save writes"));
  await assert.rejects(detectCheckpoint(join(dir, "pytorch_model.bin")), /pytorch_model\.bin: unknown checkpoint format: expected a Hugging Face directory .* or a llama2\.c \.bin file/);
  await writeFile(join(dir, "short.bin"), "abc");
  await assert.rejects(detectCheckpoint(join(dir, "short.bin")), /unknown checkpoint format.*too short/);
});
