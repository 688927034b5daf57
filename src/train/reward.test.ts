// Reward models: the score is read at the last non-padding token, a ranking's K(K−1)/2 pairs (and no
// tie) enter one batch's loss as hand-computed, the model reloads as a sequence classifier, and
// TRL's smoke test through the shared trainer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pairExample, rankingExample } from "../data/datasets.ts";
import { compile, release, toNumber } from "../engine/arrays.ts";
import { initEngine } from "../engine/runtime.ts";
import { tempDir } from "../io/test-helpers.ts";
import { architectureFor, SCORE_HEAD } from "../models/architecture.ts";
import { loadModel, saveModel, type LoadedModel } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import { defaultRewardConfig, type RewardConfig } from "./config.ts";
import { evaluatePreferences, fitToLength, rewardBatch, rewardLoss, rewardModelFromCausalLm, RewardScorer, rewardTask, type RewardBatch } from "./reward.ts";
import { assertAllChanged, assertBitEqual, assertLogsDocumented, hostParams, preferences, tinyModel } from "./test-helpers.ts";
import { train } from "./trainer.ts";

function tinyRewardModel(seed = 3) {
  const { config, params } = tinyModel(seed);
  const model: LoadedModel = { config, arch: architectureFor(config), params, path: "tiny", format: "hf-dir" };
  return rewardModelFromCausalLm(model, { seed: 11, padTokenId: 0 });
}

const logSigmoid = (x: number) => -Math.log1p(Math.exp(-x));

test("a reward model from a causal LM: score head instead of LM head, sequence-classifier config, reloads with the same scores", async () => {
  await initEngine();
  const rm = tinyRewardModel();
  assert.deepEqual(rm.config.architectures, ["LlamaForSequenceClassification"]);
  assert.equal(rm.config.num_labels, 1);
  assert.equal(rm.config.pad_token_id, 0);
  assert.ok(!("lm_head.weight" in rm.params));
  assert.deepEqual(rm.params[SCORE_HEAD]!.shape, [1, 16]);

  const dir = await tempDir();
  await saveModel(dir, rm.config, rm.params);
  const json = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual([json.architectures, json.num_labels, json.pad_token_id], [["LlamaForSequenceClassification"], 1, 0]);
  const reloaded = await loadModel(dir);
  assertBitEqual(await hostParams(rm.params), await hostParams(reloaded.params));

  // The score is read at the last real token, so padding (to 32 here, beside a longer row) changes nothing.
  const scorer = new RewardScorer(rm.arch, 0, 64);
  const short = [1, 5, 9, 4];
  const [alone] = await scorer.score(rm.params, [short]);
  const [padded] = await scorer.score(rm.params, [short, Array.from({ length: 40 }, (_, i) => 3 + (i % 30))], 2);
  const [prefix] = await scorer.score(rm.params, [short.slice(0, 3)]);
  assert.ok(Math.abs(alone! - padded!) < 1e-5, `${alone} vs ${padded}`);
  assert.ok(Math.abs(alone! - prefix!) > 1e-6, "a shorter row should score differently");
  scorer.dispose();
  release([rm.params, reloaded.params]);
});

test("a ranking of K responses contributes its K(K-1)/2 pairs, ties none; loss, accuracy and margin as computed by hand", async () => {
  await initEngine();
  const rm = tinyRewardModel();
  const responses = [[1, 4, 5], [1, 4, 6, 7], [1, 4, 8], [1, 9]];
  const ranking = rankingExample(responses, [[2], [0, 3], [1]]); // 2 > {0 ~ 3} > 1: 5 pairs, the tie gives none
  assert.deepEqual(ranking.pairs, [{ chosen: 2, rejected: 0 }, { chosen: 2, rejected: 3 }, { chosen: 2, rejected: 1 }, { chosen: 0, rejected: 1 }, { chosen: 3, rejected: 1 }]);
  const pair = pairExample([1, 12, 13], [1, 14]);
  const examples = [ranking, pair];

  const scorer = new RewardScorer(rm.arch, 0, 64);
  const r = await scorer.score(rm.params, [...responses, ...pair.responses]);
  const diffs = [...ranking.pairs.map((p) => r[p.chosen]! - r[p.rejected]!), r[4]! - r[5]!];
  const expected = (coef: number) => -diffs.reduce((s, d) => s + logSigmoid(d), 0) / diffs.length + (coef * [...ranking.pairs.map((p) => r[p.chosen]! + r[p.rejected]!), r[4]! + r[5]!].reduce((s, x) => s + x * x, 0)) / diffs.length;

  for (const coef of [null, 0.5]) {
    const { batch, weight } = rewardBatch(examples, 64, 0);
    assert.equal(weight, 6);
    assert.deepEqual(batch.chosen.shape, [6, 6]);
    const loss = compile((p: Params, b: RewardBatch) => rewardLoss(rm.arch, { center_rewards_coefficient: coef })(p, b));
    const out = loss(rm.params, batch);
    const hand = expected(coef ?? 0);
    assert.ok(Math.abs((await toNumber(out.loss)) - hand) < 1e-5, `loss vs hand-computed ${hand} (coef ${coef})`);
    assert.ok(Math.abs((await toNumber(out.metrics.accuracy!)) - diffs.filter((d) => d > 0).length / 6) < 1e-6);
    assert.ok(Math.abs((await toNumber(out.metrics.margin!)) - diffs.reduce((s, d) => s + d, 0) / 6) < 1e-5);
    loss.dispose();
    release(batch);
  }

  // A margin shifts every difference: −log σ(r_c − r_r − m).
  const withMargin = [pairExample([1, 12, 13], [1, 14], 0.7), pairExample(responses[0]!, responses[1]!, 0.7)];
  const { batch } = rewardBatch(withMargin, 64, 0);
  const loss = compile((p: Params, b: RewardBatch) => rewardLoss(rm.arch, { center_rewards_coefficient: null })(p, b).loss);
  const hand = -(logSigmoid(r[4]! - r[5]! - 0.7) + logSigmoid(r[0]! - r[1]! - 0.7)) / 2;
  assert.ok(Math.abs((await toNumber(loss(rm.params, batch))) - hand) < 1e-5);

  const evaluated = await evaluatePreferences(scorer, rm.params, examples);
  assert.equal(evaluated.n, 6);
  assert.ok(Math.abs(evaluated.mean_margin - diffs.reduce((s, d) => s + d, 0) / 6) < 1e-5);
  loss.dispose();
  scorer.dispose();
  release([rm.params, batch]);
});

test("responses longer than max_length are dropped with their pairs", () => {
  const ranking = rankingExample([[1, 2], [1, 2, 3, 4, 5], [1, 3]], [[0], [1], [2]]);
  const { kept, droppedPairs } = fitToLength([ranking, pairExample([1, 2, 3, 4, 5, 6], [1])], 4);
  assert.equal(droppedPairs, 3);
  assert.deepEqual(kept, [{ responses: [[1, 2], [1, 3]], pairs: [{ chosen: 0, rejected: 1 }] }]);
});

test("keep_end truncation keeps BOS and the last max_length-1 tokens instead of dropping", () => {
  const ranking = rankingExample([[1, 2], [1, 2, 3, 4, 5], [1, 3]], [[0], [1], [2]]);
  const { kept, droppedPairs, truncated } = fitToLength([ranking, pairExample([1, 2, 3, 4, 5, 6], [1])], 4, "keep_end");
  assert.equal(droppedPairs, 0);
  assert.equal(truncated, 2);
  assert.deepEqual(kept[0]!.responses, [[1, 2], [1, 3, 4, 5], [1, 3]]);
  assert.deepEqual(kept[0]!.pairs, ranking.pairs);
  assert.deepEqual(kept[1]!.responses, [[1, 4, 5, 6], [1]]);
});

test("reward-model smoke test: a few steps, the loss is finite, every parameter changed, exactly the documented metrics logged", async () => {
  await initEngine();
  const dir = await tempDir();
  const rm = tinyRewardModel();
  const before = await hostParams(rm.params);
  const config: RewardConfig = { ...defaultRewardConfig, learning_rate: 5e-3, per_device_train_batch_size: 8, max_steps: 8, logging_steps: 4, save_steps: 100, max_length: 32, center_rewards_coefficient: 0.01 };
  const data = preferences(72);
  const task = rewardTask(rm.arch, config, { train: data.slice(0, 64), eval: data.slice(64) }, { modelConfig: rm.config }, 0);
  const result = await train(task, rm.params, { outputDir: dir, progress: false, log: () => {} });
  assertAllChanged(before, await hostParams(result.params));
  const logs = result.state.log_history;
  for (const r of logs.filter((x) => "loss" in x)) assert.ok(Number.isFinite(r.loss), JSON.stringify(r));
  assertLogsDocumented(logs, "Reward model");
  const evals = logs.filter((x) => "eval_loss" in x);
  assert.equal(evals.length, 2);
  // The preference (low last token over high) is easy: 8 steps already separate held-out pairs.
  assert.ok(evals[1]!.eval_accuracy! > 0.8, JSON.stringify(evals[1]));
  const reloaded = await loadModel(dir);
  assert.deepEqual(reloaded.config.architectures, ["LlamaForSequenceClassification"]);
  release([result.params, reloaded.params]);
});
