// Reward-model ensembles end to end (Coste et al. 2023): `rlhf rm train --ensemble 2
// --ensemble_bootstrap` killed with SIGKILL in its second member and resumed gives the members an
// uninterrupted run gives, byte for byte, without training the first again; the directory is one
// reward source whose score is the members' centred mean (or min, or UWO); and PPO on stories260K against it
// logs objective/rm_ensemble_std every step, as `rlhf eval` reports rm_ensemble_std.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RLHF_BIN, runRlhf, runRlhfOk } from "../cli/test-helpers.ts";
import { initEngine } from "../engine/runtime.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { readRewardStats } from "../train/reward-stats.ts";
import { memberOffsets, readEnsemble } from "../train/reward-ensemble.ts";
import { documentedMetrics, tinyModelDir } from "../train/test-helpers.ts";
import { EnsembleRewardSource, loadRewardSource, RewardModelSource } from "./reward-source.ts";

async function setUp(): Promise<{ dir: string; model: string; prefs: string }> {
  await initEngine();
  const dir = await tempDir();
  const model = await tinyModelDir(dir);
  const words = ["cat", "dog", "sun", "tree", "ball", "red", "big", "happy"];
  const prefs = join(dir, "prefs.jsonl");
  writeFileSync(prefs, words.flatMap((w) => words.map((u) => JSON.stringify({ prompt: `The ${w} is`, chosen: ` ${u} and happy.`, rejected: ` ${u} and sad!` }))).join("\n") + "\n");
  return { dir, model, prefs };
}

const train = (model: string, prefs: string, out: string) => ["rm", "train", "--model", model, "--data", prefs, "--output", out, "--ensemble", "2", "--ensemble_bootstrap", "--max_length", "32", "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--max_steps", "12", "--save_steps", "2", "--logging_steps", "4", "--eval_split_ratio", "0.25"];

test("rlhf rm train --ensemble 2 --ensemble_bootstrap killed in its second member resumes to the same members; the directory scores as the members' mean, min or UWO", async () => {
  const { dir, model, prefs } = await setUp();
  const straight = join(dir, "straight");
  const done = runRlhfOk(train(model, prefs, straight));
  const manifest = readEnsemble(straight)!;
  assert.deepEqual([manifest.members, manifest.seed, manifest.bootstrap], [["member-0", "member-1"], 42, true]);
  assert.equal(manifest.eval!.n, 16);
  assert.equal(manifest.eval!.member_accuracy.length, 2);
  assert.match(done.stderr, /held-out accuracy of the members \d\.\d{4}, \d\.\d{4}; of their mean \d\.\d{4} \(16 pairs\)/);
  // Each member's own last evaluation is the accuracy the ensemble reports for it (the same held-out pairs).
  manifest.members.forEach((m, i) => {
    const last = readFileSync(join(straight, m, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>).filter((r) => "eval_accuracy" in r).at(-1)!;
    assert.ok(Math.abs(last.eval_accuracy! - manifest.eval!.member_accuracy[i]!) < 1e-9, `member ${i}: ${last.eval_accuracy} vs ${manifest.eval!.member_accuracy[i]}`);
  });
  const stats = readRewardStats(straight)!;
  assert.equal(stats.count, 96);
  assert.ok(stats.ensemble_std!.mean > 0 && stats.ensemble_std!.percentiles.p99! >= stats.ensemble_std!.percentiles.p1!);
  const weights = (d: string) => readFileSync(join(d, "model.safetensors"));
  assert.ok(!weights(join(straight, "member-0")).equals(weights(join(straight, "member-1"))), "the members differ (seed, resample)");

  // Killed once the second member has a checkpoint, resumed: member 0 is not trained again.
  const killed = join(dir, "killed");
  const child = spawn(process.execPath, [RLHF_BIN, ...train(model, prefs, killed)], { stdio: "ignore" });
  const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  while (!existsSync(join(killed, "member-1", "checkpoint-4"))) {
    if (child.exitCode !== null) assert.fail(`rm train --ensemble exited with ${child.exitCode} before member-1's checkpoint-4`);
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill("SIGKILL");
  assert.equal(await exit, "SIGKILL");
  assert.ok(!existsSync(join(killed, "ensemble.json")), "a killed ensemble has no manifest, so nothing reads it as complete");
  const resumed = runRlhfOk([...train(model, prefs, killed), "--resume"]);
  assert.match(resumed.stderr, /ensemble member 1\/2 already trained/);
  assert.match(resumed.stderr, /resuming from .*member-1\/checkpoint-\d+/);
  for (const m of manifest.members) assert.ok(weights(join(straight, m)).equals(weights(join(killed, m))), `${m} differs after the resume`);
  assert.deepEqual(readEnsemble(killed), manifest);

  // One reward source: the members' mean by default; min and UWO from the same members' scores.
  const prompts = ["The cat is", "The cat is", "A tree is"];
  const completions = [" dog and happy.", " dog and sad!", " big"];
  const members = await Promise.all(manifest.members.map((m) => RewardModelSource.load(join(straight, m))));
  // Each member centred by its mean score on its training responses (its reward_stats.json).
  const offsets = memberOffsets(manifest.members.map((m) => join(straight, m)));
  assert.deepEqual(offsets, manifest.members.map((m) => readRewardStats(join(straight, m))!.mean));
  const centred: number[][] = [];
  for (const [i, m] of members.entries()) centred.push((await m.score(prompts, completions)).map((s) => s - offsets[i]!));
  const [a, b] = centred as [number[], number[]];
  members.forEach((m) => m.dispose());
  const expect = (reduce: "mean" | "min" | "uwo", value: (x: number, y: number) => number) => async () => {
    const source = await loadRewardSource([straight], { ensemble_reduce: reduce, uwo_lambda: 0.7 });
    assert.ok(source instanceof EnsembleRewardSource);
    const scores = await source.score(prompts, completions);
    scores.forEach((s, i) => assert.ok(Math.abs(s - value(a[i]!, b[i]!)) < 1e-5, `${reduce} [${i}]: ${s} vs ${value(a[i]!, b[i]!)}`));
    source.lastStd().forEach((s, i) => assert.ok(Math.abs(s - Math.abs(a[i]! - b[i]!) / 2) < 1e-5));
    const metric = source.takeMetrics()["objective/rm_ensemble_std"]!;
    assert.ok(Math.abs(metric - a.reduce((t, x, i) => t + Math.abs(x - b[i]!) / 2, 0) / 3) < 1e-5);
    assert.deepEqual(source.takeMetrics(), {}, "taken metrics are cleared");
    source.dispose();
  };
  await expect("mean", (x, y) => (x + y) / 2)();
  await expect("min", Math.min)();
  await expect("uwo", (x, y) => (x + y) / 2 - 0.7 * ((x - y) / 2) ** 2)();
  assert.ok(scoresPreferHappy(a, b), "the members learned the preference");
});

const scoresPreferHappy = (a: number[], b: number[]) => a[0]! > a[1]! && b[0]! > b[1]!;

test("PPO on stories260K against a 2-member ensemble logs objective/rm_ensemble_std every step; rlhf eval reports rm_ensemble_std; --ensemble_reduce is checked", async () => {
  const { dir, model, prefs } = await setUp();
  const ensemble = join(dir, "ensemble");
  runRlhfOk(train(model, prefs, ensemble));
  const promptFile = join(dir, "prompts.jsonl");
  writeFileSync(promptFile, ["Once upon a time there", "Tom and Lily went to", "The little dog saw a", "One day, a girl named"].map((prompt) => JSON.stringify({ prompt })).join("\n") + "\n");
  const out = join(dir, "ppo");
  const policy = sharedData("llama2c/stories260K.bin");
  const ppo = runRlhfOk(["ppo", "--policy", policy, "--reward", ensemble, "--prompts", promptFile, "--output", out, "--total_steps", "3", "--batch_size", "4", "--response_length", "8", "--learning_rate", "1e-4", "--save_steps", "3", "--ensemble_reduce", "uwo", "--uwo_lambda", "0.5"]);
  assert.doesNotMatch(ppo.stderr, /monitor reward_ood is off/, "the ensemble's reward_stats.json turns reward_ood on");
  const records = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  assert.equal(records.length, 3);
  const [name] = documentedMetrics("Any on-policy trainer", "Logged with a reward-model ensemble");
  for (const r of records) assert.ok(Number.isFinite(r[name!]) && r[name!]! > 0, JSON.stringify(r));
  assert.equal((JSON.parse(readFileSync(join(out, "ppo_config.json"), "utf8")) as Record<string, unknown>).ensemble_reduce, "uwo");
  // The memory plan holds both members.
  const plan = runRlhfOk(["ppo", "--policy", policy, "--reward", ensemble, "--prompts", promptFile, "--output", join(dir, "plan"), "--batch_size", "4", "--response_length", "8", "--dry-run"]).stdout;
  assert.match(plan, /reward model 1/);
  assert.match(plan, /reward model 2/);

  const evaluated = JSON.parse(runRlhfOk(["eval", "--policy", join(out, "policy"), "--reference", policy, "--reward", ensemble, "--prompts", promptFile, "--max-new-tokens", "8", "--json", "--ensemble-reduce", "min"]).stdout) as Record<string, number>;
  assert.ok(evaluated.rm_ensemble_std! > 0 && evaluated.reference_rm_ensemble_std! > 0, JSON.stringify(evaluated));
  const bad = runRlhf(["eval", "--policy", policy, "--reference", policy, "--reward", ensemble, "--prompts", promptFile, "--ensemble_reduce", "max"]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--ensemble_reduce must be one of mean, min, uwo/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, "no stack trace");
});
