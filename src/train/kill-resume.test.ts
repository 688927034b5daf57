// The real thing, for every offline trainer: `rlhf sft`, `rlhf rm train`, `rlhf dpo` and `rlhf kto`
// killed with SIGKILL mid-run and started again with --resume end with the same weights, byte for
// byte, and the same metrics as a run that was never interrupted (assertResumesAfterKill). Each
// run accumulates two micro-batches per step and crosses an epoch boundary. Then `rlhf rm train`,
// `rm eval --json` and `rm score` on the CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runRlhfOk } from "../cli/test-helpers.ts";
import { initEngine } from "../engine/runtime.ts";
import { tempDir } from "../io/test-helpers.ts";
import { assertResumesAfterKill, tinyModelDir } from "./test-helpers.ts";

async function setUp(): Promise<{ dir: string; model: string; sft: string; prefs: string }> {
  await initEngine();
  const dir = await tempDir();
  const model = await tinyModelDir(dir);
  const words = ["cat", "dog", "sun", "tree", "ball", "red", "big", "happy"];
  const lines = Array.from({ length: 48 }, (_, i) => JSON.stringify({ prompt: `Say ${words[i % 8]} ${words[(i * 3) % 8]}:`, completion: ` ${words[(i * 3) % 8]} ${words[i % 8]}.` }));
  const sft = join(dir, "sft.jsonl");
  writeFileSync(sft, lines.join("\n") + "\n");
  const prefs = join(dir, "prefs.jsonl");
  writeFileSync(prefs, words.flatMap((w) => words.map((u) => JSON.stringify({ prompt: `The ${w} is`, chosen: ` ${u} and happy.`, rejected: ` ${u} and sad!` }))).join("\n") + "\n");
  return { dir, model, sft, prefs };
}

/** A run of 30 steps of 2 micro-batches of 4, a checkpoint every 5 steps, killed at checkpoint-10 or later. */
const run = ["--max_length", "32", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", "--max_steps", "30", "--save_steps", "5", "--logging_steps", "5", "--eval_steps", "15"];

test("rlhf sft killed with SIGKILL and resumed gives the same final weights as an uninterrupted run", async () => {
  const { dir, model, sft } = await setUp();
  await assertResumesAfterKill(dir, (out) => ["sft", "--model", model, "--data", sft, "--output", out, ...run, "--learning_rate", "3e-3"], 10);
});

test("rlhf rm train killed with SIGKILL and resumed gives the same final weights as an uninterrupted run", async () => {
  const { dir, model, prefs } = await setUp();
  await assertResumesAfterKill(dir, (out) => ["rm", "train", "--model", model, "--data", prefs, "--output", out, ...run, "--learning_rate", "5e-3"], 10);
});

test("rlhf dpo killed with SIGKILL and resumed gives the same final weights as an uninterrupted run, the reference log-probs read back", async () => {
  const { dir, model, prefs } = await setUp();
  const stderr = await assertResumesAfterKill(dir, (out) => ["dpo", "--model", model, "--data", prefs, "--output", out, ...run, "--learning_rate", "3e-3"], 10);
  assert.match(stderr, /reference log-probs of 64 pairs read from .*dpo_ref_logps\.json/);
});

test("rlhf kto killed with SIGKILL and resumed gives the same final weights as an uninterrupted run, the reference log-probs read back", async () => {
  const { dir, model, prefs } = await setUp();
  const stderr = await assertResumesAfterKill(dir, (out) => ["kto", "--model", model, "--data", prefs, "--output", out, ...run, "--learning_rate", "3e-3"], 10);
  assert.match(stderr, /reference log-probs of 128 examples read from .*kto_ref_logps\.json/);
});

test("rlhf rm train, rm eval --json and rm score on the command line", async () => {
  const { dir, model, prefs } = await setUp();
  const out = join(dir, "rm");
  const train = runRlhfOk(["rm", "train", "--model", model, "--data", prefs, "--output", out, "--max_length", "32", "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--max_steps", "12", "--eval_split_ratio", "0.25"]);
  assert.match(train.stderr, /48 training records, 16 held out/);
  const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual([config.architectures, config.num_labels], [["LlamaForSequenceClassification"], 1]);

  const result = JSON.parse(runRlhfOk(["rm", "eval", "--model", out, "--data", prefs, "--split", "eval", "--json"]).stdout) as Record<string, number>;
  assert.deepEqual(Object.keys(result).sort(), ["accuracy", "mean_margin", "n"]);
  assert.equal(result.n, 16);
  // "happy." over "sad!" is an easy preference: 12 steps learn it.
  assert.ok(result.accuracy! > 0.8, JSON.stringify(result));
  const lastEval = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>).filter((r) => "eval_accuracy" in r).at(-1)!;
  assert.ok(Math.abs(lastEval.eval_accuracy! - result.accuracy!) < 1e-6, "rm eval --split eval scores the held-out pairs of training");

  const scores = runRlhfOk(["rm", "score", "--model", out, "--data", prefs]).stdout.trim().split("\n").map((l) => JSON.parse(l) as { chosen_score: number; rejected_score: number });
  assert.equal(scores.length, 64);
  assert.ok(scores.every((s) => Number.isFinite(s.chosen_score) && Number.isFinite(s.rejected_score)));
});
