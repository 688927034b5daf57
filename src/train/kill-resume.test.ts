// The real thing: `rlhf sft` killed with SIGKILL mid-run and started again with --resume ends with
// the same weights, byte for byte, as a run that was never interrupted; then `rlhf rm train`,
// `rm eval --json` and `rm score` on the CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initEngine } from "../engine/runtime.ts";
import { tempDir } from "../io/test-helpers.ts";
import { listCheckpoints } from "./checkpoint.ts";
import { tinyModelDir } from "./test-helpers.ts";

const bin = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));

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

function rlhf(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  assert.equal(r.status, 0, `rlhf ${args.join(" ")}\n${r.stderr}`);
  return r;
}

test("rlhf sft killed with SIGKILL and resumed gives the same final weights as an uninterrupted run", async () => {
  const { dir, model, sft } = await setUp();
  const args = (out: string) => ["sft", "--model", model, "--data", sft, "--output", out, "--max_length", "32", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", "--max_steps", "120", "--save_steps", "10", "--logging_steps", "10", "--eval_steps", "60"];
  const straight = join(dir, "straight");
  rlhf(args(straight));

  const killed = join(dir, "killed");
  const child = spawn(process.execPath, [bin, ...args(killed)], { stdio: "ignore" });
  const exit = new Promise<NodeJS.Signals | null>((done) => child.on("exit", (_code, signal) => done(signal)));
  while (!existsSync(join(killed, "checkpoint-30"))) await new Promise((r) => setTimeout(r, 10));
  child.kill("SIGKILL");
  assert.equal(await exit, "SIGKILL", "the run finished before it could be killed");
  const last = listCheckpoints(killed).at(-1)!.step;
  assert.ok(last >= 30 && last < 120, `killed at checkpoint ${last}`);
  assert.ok(!existsSync(join(killed, "config.json")));

  const resumed = rlhf([...args(killed), "--resume"]);
  assert.match(resumed.stderr, new RegExp(`resuming from .*checkpoint-${last} \\(step ${last} of 120\\)`));
  const weights = (d: string) => readFileSync(join(d, "model.safetensors"));
  assert.ok(weights(straight).equals(weights(killed)), "final weights differ");
  assert.ok(weights(join(straight, "checkpoint-120")).equals(weights(join(killed, "checkpoint-120"))));
  const steps = (d: string) => readFileSync(join(d, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { step: number }).step);
  assert.deepEqual(steps(killed), steps(straight));
});

test("rlhf rm train, rm eval --json and rm score on the command line", async () => {
  const { dir, model, prefs } = await setUp();
  const out = join(dir, "rm");
  const train = rlhf(["rm", "train", "--model", model, "--data", prefs, "--output", out, "--max_length", "32", "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--max_steps", "12", "--eval_split_ratio", "0.25"]);
  assert.match(train.stderr, /48 training records, 16 held out/);
  const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual([config.architectures, config.num_labels], [["LlamaForSequenceClassification"], 1]);

  const result = JSON.parse(rlhf(["rm", "eval", "--model", out, "--data", prefs, "--split", "eval", "--json"]).stdout) as Record<string, number>;
  assert.deepEqual(Object.keys(result).sort(), ["accuracy", "mean_margin", "n"]);
  assert.equal(result.n, 16);
  // "happy." over "sad!" is an easy preference: 12 steps learn it.
  assert.ok(result.accuracy! > 0.8, JSON.stringify(result));
  const lastEval = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>).filter((r) => "eval_accuracy" in r).at(-1)!;
  assert.ok(Math.abs(lastEval.eval_accuracy! - result.accuracy!) < 1e-6, "rm eval --split eval scores the held-out pairs of training");

  const scores = rlhf(["rm", "score", "--model", out, "--data", prefs]).stdout.trim().split("\n").map((l) => JSON.parse(l) as { chosen_score: number; rejected_score: number });
  assert.equal(scores.length, 64);
  assert.ok(scores.every((s) => Number.isFinite(s.chosen_score) && Number.isFinite(s.rejected_score)));
});
