// Online DPO: on a tiny model with a programmatic reward the trainer ranks each pair by score, logs
// exactly its documented metrics, leaves the reference alone and raises the reward (also training a
// LoRA adapter on the frozen base); on the command
// line a run killed with SIGKILL and resumed ends bit for bit where an uninterrupted run ends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initEngine } from "../engine/runtime.ts";
import { toHost } from "../engine/arrays.ts";
import { copyParams, initParams } from "../models/params.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { initAdapter } from "../models/lora.ts";
import { adapterArch, peftDefaults } from "../train/peft-config.ts";
import { OnlineDpoTrainer } from "./online-dpo-trainer.ts";
import { defaultOnlineDpoRunConfig } from "./online-dpo-config.ts";
import { documentedMetrics, letters, shareOfE, tinyArch } from "./test-helpers.ts";

const ONLINE_DPO_METRICS = documentedMetrics("rlhf online-dpo");

test("online DPO ranks each pair by score, logs its documented metrics, keeps the reference and raises the reward", async () => {
  await initEngine();
  const policy = initParams(tinyArch, 3);
  const reference = copyParams(policy);
  const before = new Map(await Promise.all(Object.entries(reference).map(async ([k, v]) => [k, await toHost(v.ref)] as const)));
  const config = { ...defaultOnlineDpoRunConfig, batch_size: 8, total_steps: 30, learning_rate: 3e-2, beta: 0.1, temperature: 1, response_length: 6, lr_scheduler_type: "constant" as const };
  const trainer = new OnlineDpoTrainer({ config, models: { arch: tinyArch, policy, reference }, tokenizer: letters, prompts: ["ab", "c", "dd", "abc", "e"], reward: shareOfE, eosIds: [2] });
  const scores: number[] = [];
  for (let s = 0; s < config.total_steps; s++) {
    const { metrics, samples } = await trainer.step();
    assert.deepEqual(Object.keys(metrics).sort(), [...ONLINE_DPO_METRICS].sort());
    for (const k of ONLINE_DPO_METRICS) assert.ok(Number.isFinite(metrics[k]), `${k} = ${metrics[k]}`);
    assert.equal(samples.length, 8);
    for (const p of samples) assert.ok(p.chosen_score >= p.rejected_score, "the chosen completion must score at least as high");
    const margin = samples.reduce((a, p) => a + p.chosen_score - p.rejected_score, 0) / samples.length;
    assert.ok(Math.abs(metrics["objective/scores_margin"]! - margin) < 1e-9);
    assert.ok(Math.abs(metrics["objective/non_score_reward"]! + config.beta * metrics["objective/kl"]!) < 1e-6);
    scores.push(metrics["objective/scores"]!);
  }
  for (const [k, v] of Object.entries(reference)) assert.deepEqual(await toHost(v.ref), before.get(k), `reference ${k} changed`);
  const first = scores.slice(0, 5).reduce((a, x) => a + x, 0) / 5;
  const last = scores.slice(-5).reduce((a, x) => a + x, 0) / 5;
  assert.ok(last > first + 0.1, `mean score went from ${first.toFixed(3)} to ${last.toFixed(3)}`);
  await trainer.dispose();
});

test("online DPO with --use_peft trains only the adapter (lm_head trained whole): the base, which is also the reference, is untouched, and the reward rises", async () => {
  await initEngine();
  const base = initParams(tinyArch, 3);
  const before = new Map(await Promise.all(Object.entries(base).map(async ([k, v]) => [k, await toHost(v.ref)] as const)));
  const { arch, config: lora } = adapterArch({ arch: tinyArch, path: "tiny" }, { ...peftDefaults, use_peft: true, lora_r: 4, lora_target_modules: ["all-linear"], lora_modules_to_save: ["lm_head"] }, "CAUSAL_LM", false);
  const adapter = initAdapter(tinyArch, lora, base, 1);
  const config = { ...defaultOnlineDpoRunConfig, batch_size: 8, total_steps: 30, learning_rate: 3e-2, beta: 0.1, temperature: 1, response_length: 6, lr_scheduler_type: "constant" as const };
  const trainer = new OnlineDpoTrainer({ config, models: { arch, policy: adapter, reference: base, frozen: base }, tokenizer: letters, prompts: ["ab", "c", "dd", "abc", "e"], reward: shareOfE, eosIds: [2] });
  const scores: number[] = [];
  for (let s = 0; s < config.total_steps; s++) scores.push((await trainer.step()).metrics["objective/scores"]!);
  assert.deepEqual(Object.keys(trainer.policy).sort(), Object.keys(adapter).sort(), "the adapter's parameters are what is trained");
  for (const [k, v] of Object.entries(base)) assert.deepEqual(await toHost(v.ref), before.get(k), `base ${k} changed`);
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  assert.ok(mean(scores.slice(-5)) > mean(scores.slice(0, 5)) + 0.1, `mean score went from ${mean(scores.slice(0, 5)).toFixed(3)} to ${mean(scores.slice(-5)).toFixed(3)}`);
  await trainer.dispose();
});

const bin = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));

test("rlhf online-dpo killed with SIGKILL and resumed matches an uninterrupted run exactly", { timeout: 240_000 }, async () => {
  const dir = await tempDir();
  await writeFile(join(dir, "reward.mjs"), 'export function reward(p, cs) { return cs.map((c) => (c.match(/\\b(happy|fun|play|friends)\\b/g) ?? []).length - c.length / 100); }\n');
  const prompts = ["Once upon a time there", "Tom and Lily went to", "The little dog saw a", "One day, a girl named"];
  await writeFile(join(dir, "prompts.jsonl"), prompts.map((p) => JSON.stringify({ prompt: p })).join("\n") + "\n");
  const args = (out: string) => [
    bin, "online-dpo", "--policy", sharedData("llama2c/stories260K.bin"), "--reward", join(dir, "reward.mjs"), "--prompts", join(dir, "prompts.jsonl"), "--output", out,
    "--total_steps", "5", "--batch_size", "4", "--response_length", "12", "--save_steps", "1", "--learning_rate", "1e-4", "--gradient_accumulation_steps", "2", "--sample_steps", "1",
  ];
  const straight = join(dir, "straight");
  const r = spawnSync(process.execPath, args(straight), { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);

  const killed = join(dir, "killed");
  const child = spawn(process.execPath, args(killed), { stdio: "ignore" });
  const exit = new Promise<NodeJS.Signals | null>((done) => child.on("exit", (_code, signal) => done(signal)));
  while (!existsSync(join(killed, "checkpoint-2", "trainer_state.json"))) await new Promise((res) => setTimeout(res, 10));
  child.kill("SIGKILL");
  assert.equal(await exit, "SIGKILL", "the run finished before it could be killed");
  const resumed = spawnSync(process.execPath, [...args(killed), "--resume"], { encoding: "utf8" });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /online_dpo: resumed from .*checkpoint-\d \(step \d of 5\)/);

  const weights = async (d: string) => (await readSafetensors(join(d, "policy", "model.safetensors"))).tensors;
  const [a, b] = [await weights(straight), await weights(killed)];
  for (const [name, t] of a) assert.deepEqual(b.get(name)!.data, t.data, `${name} differs after resume`);
  const records = (d: string, f: string) => readFile(join(d, f), "utf8").then((t) => t.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>));
  assert.deepEqual(await records(killed, "metrics.jsonl"), await records(straight, "metrics.jsonl"));
  assert.deepEqual(await records(killed, "samples.jsonl"), await records(straight, "samples.jsonl"));
  for (const m of await records(straight, "metrics.jsonl")) assert.deepEqual(Object.keys(m).sort(), ["step", ...ONLINE_DPO_METRICS].sort());
  // Resuming it as another algorithm is refused.
  const wrong = spawnSync(process.execPath, [bin, "grpo", ...args(straight).slice(2, 10), "--resume"], { encoding: "utf8" });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /is a online_dpo checkpoint; resume it with rlhf online-dpo, not rlhf grpo/);
});
