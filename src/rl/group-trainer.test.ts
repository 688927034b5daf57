// GRPO / RLOO trainer: TRL's smoke test (a few steps on a tiny model: losses finite, every policy
// parameter changed, reference untouched), where the KL goes for each algorithm, and a learning
// test: with a programmatic reward for one letter, GRPO's mean reward rises over a short run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine } from "../engine/runtime.ts";
import { toHost } from "../engine/arrays.ts";
import { copyParams, initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { documentedMetrics, letters, shareOfE, tinyArch } from "./test-helpers.ts";
import { GroupTrainer, grpo, rloo, type GroupAlgorithm } from "./group-trainer.ts";
import { defaultGrpoRunConfig, type GroupRunConfig } from "./group-config.ts";

function models(seed: number) {
  const policy = initParams(tinyArch, seed);
  return { arch: tinyArch, policy, reference: copyParams(policy) };
}

function config(over: Partial<GroupRunConfig>): GroupRunConfig {
  return {
    ...defaultGrpoRunConfig,
    beta: 0,
    num_generations: 4,
    batch_size: 4,
    total_steps: 10,
    lr_scheduler_type: "constant",
    max_completion_length: 6,
    ...over,
  };
}


async function snapshot(p: Params): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, v] of Object.entries(p)) out.set(k, await toHost(v.ref));
  return out;
}

async function smoke(algorithm: GroupAlgorithm, over: Partial<GroupRunConfig>) {
  await initEngine();
  const m = models(1);
  const [p0, r0] = [await snapshot(m.policy), await snapshot(m.reference)];
  const trainer = new GroupTrainer({ algorithm, config: config({ learning_rate: 1e-2, ...over }), models: m, tokenizer: letters, prompts: ["ab", "c", "dd", "abc", "e"], reward: shareOfE, eosIds: [2] });
  for (let i = 0; i < 2; i++) {
    const { metrics, samples } = await trainer.step();
    // Exactly the names METRICS.md lists for the group methods (kl too: beta > 0 in both smoke runs), each finite.
    const keys = [...documentedMetrics("rlhf grpo"), "kl"];
    assert.deepEqual(Object.keys(metrics).sort(), [...keys].sort());

    for (const key of keys) assert.ok(Number.isFinite(metrics[key]), `${algorithm.name}: ${key} = ${metrics[key]}`);
    assert.equal(samples.length, 16);
    // TRL's reward_std: the std of every score of the step, not within groups.
    const scores = samples.map((s) => s.score);
    const m = scores.reduce((a, x) => a + x, 0) / 16;
    assert.ok(Math.abs(metrics.reward_std! - Math.sqrt(scores.reduce((a, x) => a + (x - m) ** 2, 0) / 15)) < 1e-12);
    assert.ok(metrics["completions/min_length"]! <= metrics["completions/mean_length"]! && metrics["completions/mean_length"]! <= metrics["completions/max_length"]!);
    // Groups are contiguous and share their prompt; advantages sum to ~0 within a group.
    for (let g = 0; g < 16; g += 4) {
      assert.ok(samples.slice(g, g + 4).every((s) => s.prompt === samples[g]!.prompt));
      assert.ok(Math.abs(samples.slice(g, g + 4).reduce((a, s) => a + s.advantage, 0)) < 1e-3);
    }
  }
  for (const [k, v] of Object.entries(trainer.policy)) {
    const now = await toHost(v.ref);
    assert.ok(now.some((x, i) => x !== p0.get(k)![i]), `${algorithm.name}: policy ${k} did not change`);
  }
  for (const [k, v] of Object.entries(m.reference)) assert.deepEqual(await toHost(v.ref), r0.get(k), `reference ${k} changed`);
  assert.equal(trainer.progress.step, 2);
  assert.equal(trainer.progress.episode, 32);
  trainer.dispose();
}

test("GRPO smoke: finite losses, every parameter changes, reference stays; k3 KL in the loss", async () => {
  await smoke(grpo, { beta: 0.04, num_iterations: 2, gradient_accumulation_steps: 2 });
});

test("RLOO smoke: finite losses, every parameter changes, reference stays; KL in the reward", async () => {
  await smoke(rloo, { beta: 0.05, loss_type: "grpo" });
});

test("RLOO subtracts beta times the sequence KL from the score; GRPO leaves the score alone", () => {
  const c = config({ num_generations: 2, beta: 0.5 });
  // Scores 1, 0 and KLs 2, 0: RLOO rewards 0, 0 → advantages 0, 0; GRPO ignores the KL.
  assert.deepEqual(rloo.advantages([1, 0], [2, 0], c), { rewards: [0, 0], advantages: [0, 0] });
  const g = grpo.advantages([1, 0], [2, 0], c);
  assert.deepEqual(g.rewards, [1, 0]);
  assert.ok(g.advantages[0]! > 0.7 && g.advantages[1]! < -0.7);
  assert.equal(rloo.lossBeta(c), 0);
  assert.equal(grpo.lossBeta(c), 0.5);
});

test("GRPO raises a programmatic reward", async () => {
  await initEngine();
  const trainer = new GroupTrainer({
    algorithm: grpo,
    config: config({ learning_rate: 3e-2, beta: 0.01, num_generations: 8, batch_size: 4 }),
    models: models(2),
    tokenizer: letters,
    prompts: ["a", "b", "c", "d"],
    reward: shareOfE,
    eosIds: [2],
  });
  const rewards: number[] = [];
  for (let i = 0; i < 12; i++) rewards.push((await trainer.step()).metrics.reward!);
  trainer.dispose();
  const first = (rewards[0]! + rewards[1]! + rewards[2]!) / 3;
  const last = (rewards[9]! + rewards[10]! + rewards[11]!) / 3;
  assert.ok(last > first + 0.15, `rewards did not rise: ${rewards.map((s) => s.toFixed(2)).join(" ")}`);
});

test("a batch that does not split into micro-batches is refused", async () => {
  await initEngine();
  assert.throws(
    () => new GroupTrainer({ algorithm: grpo, config: config({ gradient_accumulation_steps: 3 }), models: models(3), tokenizer: letters, prompts: ["a"], reward: shareOfE, eosIds: [2] }),
    /do not split into 3 equal micro-batches/,
  );
});
