// A real checkpoint as transformers saved it (../shared/data/tinystories-656k: a Llama whose tied
// embedding is stored once, under lm_head.weight) generates through the CLI exactly what an
// independent numpy forward generates (test/fixtures/tinystories-656k-greedy.json, from
// scripts/reference/tinystories_reference.py), converts and reloads with identical logits, and trains.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors } from "../io/safetensors.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { runRlhfOk } from "../cli/test-helpers.ts";
import { disposeModel, loadModel } from "./load.ts";
import { logitsOf } from "./test-helpers.ts";

interface Reference {
  prompt_ids: number[];
  max_new_tokens: number;
  completion_ids: number[];
  logprobs: number[];
  min_top2_margin: number;
  text: string;
  bos_logits: number[];
}

const reference = JSON.parse(readFileSync(new URL("../../test/fixtures/tinystories-656k-greedy.json", import.meta.url), "utf8")) as Reference;
const MODEL = "tinystories-656k";

/**
 * Our float32 against the float64 reference. One float32 rounding is 6e-8 relative; a log-prob
 * here is a few hundred roundings on logits of magnitude ~10-20 (two layers of width 128, a head of
 * 2,048), so errors of a few 1e-6 are expected (measured: 2.0e-6 at most over the 64 tokens). 1e-4
 * leaves room for other kernels while staying far below the reference's smallest greedy margin
 * between the top two logits (1.4e-3), so a passing tolerance also means greedy cannot flip.
 */
const TOLERANCE = 1e-4;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

test("tinystories-656k: rlhf generate (greedy, from BOS) matches the numpy reference token for token, log-probs within 1e-4", () => {
  const r = runRlhfOk(["generate", "--model", sharedData(MODEL), "--temperature", "0", "--max-new-tokens", String(reference.max_new_tokens), "--json"]);
  const out = JSON.parse(r.stdout) as { prompt_ids: number[]; completion_ids: number[]; text: string; logprobs: number[] };
  assert.deepEqual(out.prompt_ids, reference.prompt_ids);
  assert.deepEqual(out.completion_ids, reference.completion_ids);
  const err = maxAbsDiff(out.logprobs, reference.logprobs);
  assert.ok(err < TOLERANCE, `largest log-prob difference ${err}`);
  assert.ok(out.text.startsWith("Once upon a time, there was a little girl named Lily."), out.text);
  assert.equal(out.text, reference.text);
  // The vocabulary has multi-word tokens: the 7th ends "Lily. She ".
  const plain = runRlhfOk(["generate", "--model", sharedData(MODEL), "--temperature", "0", "--max-new-tokens", "7"]);
  assert.equal(plain.stdout, "Once upon a time, there was a little girl named Lily. She \n");
});

test("tinystories-656k: logits after BOS match the numpy reference; rlhf convert writes the tied matrix once and reloads with identical logits", async () => {
  const original = await loadModel(sharedData(MODEL));
  const afterBos = await logitsOf(original, reference.prompt_ids);
  const err = maxAbsDiff(afterBos, reference.bos_logits);
  assert.ok(err < TOLERANCE, `largest logit difference after BOS ${err}`);

  const out = join(await tempDir(), "converted");
  runRlhfOk(["convert", "--model", sharedData(MODEL), "--output", out]);
  assert.deepEqual(readdirSync(out).sort(), ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
  const stored = await readSafetensors(join(out, "model.safetensors"));
  assert.deepEqual(stored.metadata, { format: "pt", "lm_head.weight": "model.embed_tokens.weight" });
  assert.ok(stored.tensors.has("model.embed_tokens.weight") && !stored.tensors.has("lm_head.weight"), "the tied matrix is stored once, under the embedding's name");
  assert.deepEqual(JSON.parse(readFileSync(join(out, "generation_config.json"), "utf8")), JSON.parse(readFileSync(join(sharedData(MODEL), "generation_config.json"), "utf8")));

  const converted = await loadModel(out);
  assert.deepEqual(converted.config, original.config);
  const ids = [...reference.prompt_ids, ...reference.completion_ids.slice(0, 31)];
  assert.deepEqual(await logitsOf(converted, ids), await logitsOf(original, ids));
  disposeModel(original);
  disposeModel(converted);
});

test("tinystories-656k: rlhf sft trains it (3 steps on one story: loss finite and falling), the result reloads and keeps its generation_config.json", async () => {
  const dir = await tempDir();
  const story = readFileSync(sharedData("tinystories/tinystories_sample.txt"), "utf8").trim().split(/\n\s*\n/)[0]!;
  const data = join(dir, "story.jsonl");
  writeFileSync(data, Array.from({ length: 4 }, () => JSON.stringify({ text: story })).join("\n") + "\n");
  const output = join(dir, "sft");
  runRlhfOk([
    "sft", "--model", sharedData(MODEL), "--data", data, "--eval-data", data, "--output", output,
    "--max_steps", "3", "--per_device_train_batch_size", "2", "--max_length", "128", "--learning_rate", "3e-3",
    "--logging_steps", "1", "--eval_steps", "100", "--save_steps", "100",
  ]);
  const metrics = readFileSync(join(output, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { loss?: number });
  const losses = metrics.filter((m) => m.loss !== undefined).map((m) => m.loss!);
  assert.equal(losses.length, 3, JSON.stringify(metrics));
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  assert.ok(losses[2]! < losses[1]! && losses[1]! < losses[0]!, `the loss on the same story falls: ${losses}`);
  const trained = await loadModel(output);
  assert.equal(trained.arch.vocabSize, 2048);
  disposeModel(trained);
  // The starting model's generation_config.json (its stop tokens) survives fine-tuning as it was.
  const source = JSON.parse(readFileSync(join(sharedData(MODEL), "generation_config.json"), "utf8")) as unknown;
  for (const dir of [output, join(output, "checkpoint-3")]) assert.deepEqual(JSON.parse(readFileSync(join(dir, "generation_config.json"), "utf8")), source, dir);
});
