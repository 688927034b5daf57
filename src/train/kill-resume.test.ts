// The real thing, for every offline trainer: `rlhf sft`, `rlhf rm train`, `rlhf dpo` and `rlhf kto`
// killed with SIGKILL mid-run and started again with --resume end with the same weights, byte for
// byte, and the same metrics as a run that was never interrupted (assertResumesAfterKill). Each
// run accumulates two micro-batches per step and crosses an epoch boundary. The same with
// --use_peft for the reward model, DPO and KTO (LoRA SFT's is in lora-sft.test.ts). Then `rlhf rm
// train`, `rm eval --json` and `rm score` on the CLI, of a full reward model and of a LoRA one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runRlhfOk } from "../cli/test-helpers.ts";
import { initEngine } from "../engine/runtime.ts";
import { tempDir } from "../io/test-helpers.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { loadRewardSource } from "../rl/reward-source.ts";
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

  // Training ended by summarising the scores of its 48 training records' 96 responses; rm stats
  // --split all summarises all 128, whose extremes and median rm score's lines give exactly.
  const trained = JSON.parse(readFileSync(join(out, "reward_stats.json"), "utf8")) as { count: number; split: string; percentiles: Record<string, number> };
  assert.deepEqual([trained.count, trained.split], [96, "train"]);
  const ordered = Object.values(trained.percentiles);
  assert.ok(ordered.every((x, i) => i === 0 || x >= ordered[i - 1]!), ordered.join(", "));
  runRlhfOk(["rm", "stats", "--model", out, "--data", prefs, "--split", "all"]);
  const all = JSON.parse(readFileSync(join(out, "reward_stats.json"), "utf8")) as { count: number; mean: number; percentiles: Record<string, number> };
  const sorted = scores.flatMap((s) => [s.chosen_score, s.rejected_score]).sort((a, b) => a - b);
  assert.equal(all.count, 128);
  for (const [got, want] of [[all.percentiles.p0, sorted[0]], [all.percentiles.p100, sorted[127]], [all.percentiles.p50, (sorted[63]! + sorted[64]!) / 2], [all.mean, sorted.reduce((a, x) => a + x, 0) / 128]] as const) {
    assert.ok(Math.abs(got! - want!) < 1e-5, `${got} vs ${want}`);
  }
});

const lora = ["--use_peft", "--lora_r", "4", "--lora_target_modules", "all-linear"];
const digest = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

test("LoRA: rlhf rm train --use_peft killed with SIGKILL and resumed gives the same adapter; it is PEFT's SEQ_CLS layout (score trained whole), the base is untouched", async () => {
  const { dir, model, prefs } = await setUp();
  const before = digest(join(model, "model.safetensors"));
  await assertResumesAfterKill(dir, (out) => ["rm", "train", "--model", model, "--data", prefs, "--output", out, ...run, ...lora, "--learning_rate", "5e-3"], 10);
  assert.equal(digest(join(model, "model.safetensors")), before);
  const out = join(dir, "straight");
  const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual([config.task_type, config.modules_to_save, config.r], ["SEQ_CLS", ["score"], 4]);
  const keys = [...(await readSafetensors(join(out, "adapter_model.safetensors"))).tensors.keys()];
  assert.ok(keys.includes("base_model.model.score.weight"), keys.join(", "));
  assert.ok(keys.includes("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
  assert.ok(!keys.some((k) => k.endsWith("proj.weight") && !/lora_/.test(k)), "no base weight in the adapter");
});

test("LoRA: rlhf dpo --use_peft with dropout on, killed with SIGKILL and resumed, gives the same adapter; the reference log-probs are the base's", async () => {
  const { dir, model, prefs } = await setUp();
  const stderr = await assertResumesAfterKill(dir, (out) => ["dpo", "--model", model, "--data", prefs, "--output", out, ...run, ...lora, "--lora_dropout", "0.1", "--disable_dropout", "false", "--learning_rate", "3e-3"], 10);
  assert.match(stderr, /reference log-probs of 64 pairs read from .*dpo_ref_logps\.json/);
  // The full run's reference is the starting model: the LoRA run's (the base, adapter off) must be the same numbers.
  const full = join(dir, "full");
  runRlhfOk(["dpo", "--model", model, "--data", prefs, "--output", full, ...run, "--max_steps", "1"]);
  const logps = (d: string) => { const { train, eval: heldOut } = JSON.parse(readFileSync(join(d, "dpo_ref_logps.json"), "utf8")) as Record<string, number[][]>; return { train, heldOut }; };
  assert.deepEqual(logps(join(dir, "straight")), logps(full));
  // Dropout acts where TRL keeps it: without it the adapter trains differently.
  const noDropout = join(dir, "no-dropout");
  runRlhfOk(["dpo", "--model", model, "--data", prefs, "--output", noDropout, ...run, ...lora, "--lora_dropout", "0.1", "--learning_rate", "3e-3"]);
  const adapter = (d: string) => readFileSync(join(d, "adapter_model.safetensors"));
  assert.ok(!adapter(noDropout).equals(adapter(join(dir, "straight"))), "disable_dropout false trains differently from TRL's default (true)");
});

test("LoRA: rlhf kto --use_peft killed with SIGKILL and resumed gives the same adapter", async () => {
  const { dir, model, prefs } = await setUp();
  const stderr = await assertResumesAfterKill(dir, (out) => ["kto", "--model", model, "--data", prefs, "--output", out, ...run, ...lora, "--learning_rate", "3e-3"], 10);
  assert.match(stderr, /reference log-probs of 128 examples read from .*kto_ref_logps\.json/);
});

test("rlhf rm eval, rm score and a reward source load a LoRA reward model (a SEQ_CLS adapter over the causal LM it was trained from)", async () => {
  const { dir, model, prefs } = await setUp();
  const out = join(dir, "rm-lora");
  runRlhfOk(["rm", "train", "--model", model, "--data", prefs, "--output", out, "--max_length", "32", "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--max_steps", "12", "--eval_split_ratio", "0.25", ...lora]);
  const result = JSON.parse(runRlhfOk(["rm", "eval", "--model", out, "--data", prefs, "--split", "eval", "--json"]).stdout) as Record<string, number>;
  const lastEval = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>).filter((r) => "eval_accuracy" in r).at(-1)!;
  assert.equal(result.n, 16);
  assert.ok(result.accuracy! > 0.8, JSON.stringify(result));
  assert.ok(Math.abs(lastEval.eval_accuracy! - result.accuracy!) < 1e-6 && Math.abs(lastEval.eval_margin! - result.mean_margin!) < 1e-4, `rm eval of the adapter scores as training did: ${JSON.stringify([lastEval, result])}`);
  const scores = runRlhfOk(["rm", "score", "--model", out, "--data", prefs]).stdout.trim().split("\n").map((l) => JSON.parse(l) as { chosen_score: number; rejected_score: number });
  assert.equal(scores.length, 64);
  const source = await loadRewardSource([out]);
  const [happy, sad] = await source.score(["The cat is", "The cat is"], [" dog and happy.", " dog and sad!"]);
  source.dispose();
  assert.ok(happy! > sad!, `the reward source prefers what the model learned to prefer: ${happy} vs ${sad}`);
});
