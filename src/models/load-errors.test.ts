// Checkpoints the CLI must refuse as input errors (one line, no stack): weights holding NaN or
// infinite values (a diverged run), which generated garbage and exited 0, and a missing tokenizer.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { CheckpointError, InputError } from "../io/errors.ts";
import { refuseNonFinite } from "../io/finite.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { loadTokenizer } from "../tokenizers/load.ts";
import { loadModel, resolveTokenizer, saveModel } from "./load.ts";

test("refuseNonFinite names the tensor, the count and the first bad value; finite tensors pass", () => {
  const ok = new Map([["a", { shape: [2], data: new Float32Array([1, -0]) }]]);
  refuseNonFinite(ok, "x");
  const bad = new Map([...ok, ["b", { shape: [3], data: new Float32Array([0, Infinity, NaN]) }]]);
  assert.throws(() => refuseNonFinite(bad, "ckpt"), (e: Error) => e instanceof CheckpointError && e.message.startsWith("ckpt: tensor b holds 2 non-finite values (the first, at index 1, is Infinity)"));
});

test("loadModel refuses a checkpoint with one NaN weight, naming the directory and the tensor", async () => {
  const dir = join(await tempDir(), "diverged");
  const model = await loadModel(sharedData("llama2c/stories260K.bin"));
  await saveModel(dir, model.config, model.params);
  await loadModel(dir);
  const file = join(dir, "model.safetensors");
  const stored = await readSafetensors(file);
  stored.tensors.get("model.norm.weight")!.data[3] = NaN;
  await writeSafetensors(file, stored.tensors, { metadata: stored.metadata });
  await assert.rejects(loadModel(dir), (e: Error) => e instanceof CheckpointError && e.message.startsWith(`${dir}: tensor model.norm.weight holds 1 non-finite value`));
});

test("a model directory without a tokenizer is an input error (one line from the CLI, no 'internal error')", async () => {
  const dir = join(await tempDir(), "no-tokenizer");
  const model = await loadModel(sharedData("llama2c/stories260K.bin"));
  await saveModel(dir, model.config, model.params);
  await assert.rejects(resolveTokenizer(await loadModel(dir)), (e: Error) => e instanceof InputError && e.message === `${dir} has no tokenizer.json; pass --tokenizer PATH`);
  await assert.rejects(loadTokenizer(join(dir, "none.json")), (e: Error) => e instanceof InputError && /tokenizer not found/.test(e.message));
});
