// GRPO / RLOO trainer: TRL's smoke test (a few steps on a tiny model: losses finite, every policy
// parameter changed, reference untouched) for RLOO and every GRPO loss_type, each logging exactly
// the metrics METRICS.md lists for it; where the KL goes for each algorithm; dapo's and cispo's
// divisor under gradient accumulation; mask_truncated_completions; and a learning test: with a
// programmatic reward for one letter, GRPO's mean reward rises over a short run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine } from "../engine/runtime.ts";
import { toHost } from "../engine/arrays.ts";
import { copyParams, initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { documentedMetrics, letters, shareOfE, tinyArch } from "./test-helpers.ts";
import { GroupTrainer, grpo, rloo, type GroupAlgorithm } from "./group-trainer.ts";
import { defaultGrpoRunConfig, type GroupRunConfig } from "./group-config.ts";
import type { GrpoLossType } from "../algorithms/grpo.ts";

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

/** What METRICS.md says a run logs (beta > 0 in every smoke run, so `kl` too). */
function documented(algorithm: GroupAlgorithm, lossType: GrpoLossType): string[] {
  const clipping = algorithm === rloo || ["grpo", "dr_grpo", "dapo", "bnpo"].includes(lossType);
  return [
    ...documentedMetrics("rlhf grpo"),
    ...(clipping ? documentedMetrics("rlhf grpo", "Logged with clipping") : []),
    ...(algorithm === grpo && lossType === "cispo" ? documentedMetrics("rlhf grpo", "Logged with loss_type cispo") : []),
    "kl",
  ];
}

async function smoke(algorithm: GroupAlgorithm, over: Partial<GroupRunConfig>, steps = 2) {
  await initEngine();
  const m = models(1);
  const [p0, r0] = [await snapshot(m.policy), await snapshot(m.reference)];
  const c = config({ learning_rate: 1e-2, ...over });
  const trainer = new GroupTrainer({ algorithm, config: c, models: m, tokenizer: letters, prompts: ["ab", "c", "dd", "abc", "e"], reward: shareOfE, eosIds: [2] });
  for (let i = 0; i < steps; i++) {
    const { metrics, samples } = await trainer.step();
    // Exactly the names METRICS.md lists for this algorithm and loss_type, each finite.
    const keys = documented(algorithm, c.loss_type);
    assert.deepEqual(Object.keys(metrics).sort(), [...keys].sort(), `${algorithm.name} ${c.loss_type}`);

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
  assert.equal(trainer.progress.step, steps);
  assert.equal(trainer.progress.episode, 16 * steps);
  await trainer.dispose();
}

test("GRPO smoke: finite losses, every parameter changes, reference stays; k3 KL in the loss", async () => {
  await smoke(grpo, { beta: 0.04, num_iterations: 2, gradient_accumulation_steps: 2 });
});

test("every other GRPO loss_type, at either importance-sampling level, smoke-tests and logs exactly its documented metrics", async () => {
  const levels = { grpo: "sequence", dr_grpo: "token", bnpo: "sequence", cispo: "token", sapo: "sequence" } as const;
  for (const [loss_type, importance_sampling_level] of Object.entries(levels)) {
    // Two updates per step, so the second one sees ratios away from 1 (clipping, caps and gates act).
    await smoke(grpo, { beta: 0.04, num_iterations: 2, loss_type: loss_type as GrpoLossType, importance_sampling_level, epsilon_high: 0.28 }, 1);
  }
  await smoke(grpo, { beta: 0.04, num_iterations: 2, loss_type: "cispo", importance_sampling_level: "sequence" }, 1);
});

test("RLOO smoke: finite losses, every parameter changes, reference stays; KL in the reward", async () => {
  await smoke(rloo, { beta: 0.05, loss_type: "sapo", epsilon_high: 0.28 });
});

/** One step of a fresh trainer (same seed, same start): its metrics and the policy after it. */
async function oneStep(algorithm: GroupAlgorithm, over: Partial<GroupRunConfig>, eosIds = [2]) {
  await initEngine();
  const m = models(4);
  const trainer = new GroupTrainer({ algorithm, config: config({ learning_rate: 1e-2, beta: 0.04, ...over }), models: m, tokenizer: letters, prompts: ["ab", "c", "dd", "abc", "e"], reward: shareOfE, eosIds });
  const { metrics } = await trainer.step();
  const policy = await snapshot(trainer.policy);
  await trainer.dispose();
  return { metrics, policy, start: await snapshot(m.reference) };
}

test("dapo and cispo divide by the whole update's tokens: two unequal micro-batches update as one (bnpo's per-micro-batch mean does not)", async () => {
  for (const loss_type of ["dapo", "cispo", "bnpo"] as const) {
    const [one, two] = [await oneStep(grpo, { loss_type, gradient_accumulation_steps: 1 }), await oneStep(grpo, { loss_type, gradient_accumulation_steps: 2 })];
    const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-12, Math.abs(b));
    if (loss_type === "bnpo") {
      // The two micro-batches hold different token counts, so averaging their means is another weighting.
      assert.ok(relative(two.metrics.grad_norm!, one.metrics.grad_norm!) > 1e-3, `bnpo: grad_norm ${two.metrics.grad_norm} vs ${one.metrics.grad_norm}`);
      continue;
    }
    for (const key of ["loss", "grad_norm"]) assert.ok(relative(two.metrics[key]!, one.metrics[key]!) < 1e-5, `${loss_type} ${key}: ${two.metrics[key]} vs ${one.metrics[key]}`);
    for (const [name, p] of one.policy) {
      const q = two.policy.get(name)!;
      assert.ok(p.every((x, i) => Math.abs(x - q[i]!) <= 1e-6), `${loss_type}: ${name} differs between 1 and 2 micro-batches`);
    }
  }
});

test("mask_truncated_completions: when no completion ends with EOS, the update changes nothing (GRPO's losses and RLOO)", async () => {
  // EOS id 12 is outside the 12-token vocabulary, so every completion runs to max_completion_length.
  const neverEos = [12];
  for (const [algorithm, loss_type] of [[grpo, "dapo"], [grpo, "grpo"], [grpo, "cispo"], [grpo, "sapo"], [rloo, "dapo"]] as const) {
    const masked = await oneStep(algorithm, { loss_type, mask_truncated_completions: true, num_iterations: 2 }, neverEos);
    assert.equal(masked.metrics["completions/clipped_ratio"], 1);
    assert.equal(masked.metrics.loss !== undefined && Number.isFinite(masked.metrics.loss), true);
    for (const [name, p] of masked.policy) assert.deepEqual(p, masked.start.get(name), `${algorithm.name} ${loss_type}: ${name} moved`);
    // Without the flag the same completions do train the policy.
    const unmasked = await oneStep(algorithm, { loss_type, num_iterations: 2 }, neverEos);
    assert.ok([...unmasked.policy].some(([name, p]) => p.some((x, i) => x !== unmasked.start.get(name)![i])), `${algorithm.name} ${loss_type}: nothing moved without the flag`);
  }
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
  await trainer.dispose();
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
