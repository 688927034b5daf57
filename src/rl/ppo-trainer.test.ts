// PPO smoke test (TRL's: a few steps on a tiny model, losses finite, every trainable parameter of
// policy and value changed, reference untouched) and a learning test: with a programmatic reward
// for emitting one token, the mean score rises over a short run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine } from "../engine/runtime.ts";
import { toHost } from "../engine/arrays.ts";
import { parseConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import { copyParams, initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { ModuleRewardSource } from "./reward-source.ts";
import { PpoTrainer } from "./ppo-trainer.ts";
import { defaultPpoRunConfig, type PpoRunConfig } from "./ppo-config.ts";
import { documentedMetrics, letters, shareOfE, tinyArch, tinyPolicyConfig } from "./test-helpers.ts";

const valueConfig = parseConfig({ ...tinyPolicyConfig, architectures: ["LlamaForSequenceClassification"], num_labels: 1, pad_token_id: 0 }, "tiny value");

function models(seed: number) {
  const arch = tinyArch;
  const valueArch = architectureFor(valueConfig);
  const policy = initParams(arch, seed);
  return { arch, policy, reference: copyParams(policy), valueConfig, valueArch, value: initParams(valueArch, seed + 1) };
}

function config(over: Partial<PpoRunConfig>): PpoRunConfig {
  return {
    ...defaultPpoRunConfig,
    batch_size: 8,
    total_steps: 10,
    lr_scheduler_type: "constant",
    ptx_coef: 0,
    temperature: 1,
    response_length: 6,
    ...over,
  };
}


async function snapshot(p: Params): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, v] of Object.entries(p)) out.set(k, await toHost(v.ref));
  return out;
}

test("PPO smoke: finite losses, every policy and value parameter changes, reference stays", async () => {
  await initEngine();
  const m = models(1);
  const [p0, v0, r0] = [await snapshot(m.policy), await snapshot(m.value), await snapshot(m.reference)];
  const trainer = new PpoTrainer({ config: config({ learning_rate: 1e-2, num_ppo_epochs: 2, num_mini_batches: 2 }), models: m, tokenizer: letters, prompts: ["ab", "c", "dd", "abc"], reward: shareOfE, eosIds: [2] });
  for (let i = 0; i < 2; i++) {
    const { metrics } = await trainer.step();
    // Exactly the names METRICS.md lists for rlhf ppo, each finite.
    assert.deepEqual(Object.keys(metrics).sort(), documentedMetrics("rlhf ppo").sort());
    for (const [key, value] of Object.entries(metrics)) assert.ok(Number.isFinite(value), `${key} = ${value}`);
  }
  const changed = async (before: Map<string, Float32Array>, after: Params, what: string) => {
    for (const [k, v] of Object.entries(after)) {
      const now = await toHost(v.ref);
      assert.ok(now.some((x, i) => x !== before.get(k)![i]), `${what} ${k} did not change`);
    }
  };
  await changed(p0, trainer.policy, "policy");
  await changed(v0, trainer.value, "value");
  for (const [k, v] of Object.entries(m.reference)) assert.deepEqual(await toHost(v.ref), r0.get(k), `reference ${k} changed`);
  assert.equal(trainer.progress.step, 2);
  assert.equal(trainer.progress.episode, 16);
});

test("PPO raises a programmatic reward", async () => {
  await initEngine();
  const m = models(2);
  const trainer = new PpoTrainer({ config: config({ learning_rate: 3e-2, num_ppo_epochs: 4, kl_coef: 0.01, batch_size: 16 }), models: m, tokenizer: letters, prompts: ["a", "b", "c", "d"], reward: shareOfE, eosIds: [2] });
  const scores: number[] = [];
  for (let i = 0; i < 12; i++) scores.push((await trainer.step()).metrics["objective/scores"]!);
  const first = (scores[0]! + scores[1]! + scores[2]!) / 3;
  const last = (scores[9]! + scores[10]! + scores[11]!) / 3;
  assert.ok(last > first + 0.15, `scores did not rise: ${scores.map((s) => s.toFixed(2)).join(" ")}`);
});

test("PPO-ptx: the LM loss on the ptx rows enters the update and falls; off by default", async () => {
  await initEngine();
  const zero = new ModuleRewardSource("zero", (_p, cs) => cs.map(() => 0));
  const ptxText = { examples: ["abcabcab", "cabcabca", "bcabcabc"].map((t) => ({ ids: letters.encode(t), completionMask: letters.encode(t).map(() => 1) })), padId: 0 };
  const off = new PpoTrainer({ config: config({ learning_rate: 1e-2 }), models: models(3), tokenizer: letters, prompts: ["a", "b"], reward: zero, eosIds: [2], ptx: ptxText });
  assert.equal((await off.step()).metrics["loss/ptx_avg"], undefined, "ptx_coef 0 must not use the ptx data");
  assert.equal(off.progress.ptxOrder, undefined);
  await off.dispose();

  const on = new PpoTrainer({ config: config({ learning_rate: 1e-2, ptx_coef: 1, num_mini_batches: 2 }), models: models(3), tokenizer: letters, prompts: ["a", "b"], reward: zero, eosIds: [2], ptx: ptxText });
  const losses: number[] = [];
  for (let i = 0; i < 6; i++) losses.push((await on.step()).metrics["loss/ptx_avg"]!);
  assert.ok(losses.every(Number.isFinite), `ptx losses ${losses}`);
  // A zero reward leaves the LM term as the only learning signal besides the KL leash.
  assert.ok(losses.at(-1)! < losses[0]! - 0.3, `ptx loss did not fall: ${losses.map((l) => l.toFixed(3)).join(" ")}`);
  // 6 steps × 4 epochs × 2 mini-batches × 4 rows drawn in a reshuffled cycle over the 3 rows.
  assert.equal(on.progress.ptxCursor, (6 * 4 * 2 * 4) % 3 || 3);
  await on.dispose();
  assert.throws(() => new PpoTrainer({ config: config({ ptx_coef: 1 }), models: models(3), tokenizer: letters, prompts: ["a"], reward: zero, eosIds: [2] }), /needs PPO-ptx data/);
});
