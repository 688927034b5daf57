// The whole pipeline on the built-in task, small: the reward model must beat chance against the
// hidden gold preference, and both PPO and DPO must raise the gold reward above the SFT model's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runDemo } from "./pipeline.ts";
import { goldReward, labelPair, letterTokenizer, SyntheticLanguage } from "./synthetic.ts";
import { HostRng } from "../engine/random.ts";
import { loadTokenizer } from "../tokenizers/load.ts";

test("gold reward and simulated labelers behave as documented", () => {
  // a=3, e=7, o=17, x=26, z=28, b=4
  assert.equal(goldReward([3, 7, 17]), 1);
  assert.equal(goldReward([26, 28]), -1);
  assert.equal(goldReward([3, 4, 26, 4]), 0);
  assert.equal(goldReward([2]), -1); // no letters at all
  const rng = new HostRng(1);
  const wins = Array.from({ length: 2000 }, () => labelPair(0.5, 0, rng)).filter((w) => w === "a").length / 2000;
  assert.ok(Math.abs(wins - 1 / (1 + Math.exp(-4))) < 0.03, `labeler win rate ${wins}`);
  const lang = new SyntheticLanguage(0);
  assert.deepEqual(lang.sample(10, new HostRng(5)), lang.sample(10, new HostRng(5)));
});

test("the letter tokenizer: one token per letter after BOS, other characters dropped, and it saves and loads back", async () => {
  assert.deepEqual(letterTokenizer.encode("abz"), [1, 3, 4, 28]);
  assert.deepEqual(letterTokenizer.encode("a b!", { addSpecialTokens: false }), [3, 4]);
  assert.equal(letterTokenizer.decode([1, 3, 4, 28, 2], { skipSpecialTokens: true }), "abz");
  const dir = await mkdtemp(join(tmpdir(), "letters-"));
  try {
    await letterTokenizer.save(dir);
    const loaded = await loadTokenizer(dir);
    assert.deepEqual([loaded.vocabSize, loaded.bosTokenId, loaded.eosTokenId, loaded.padTokenId], [29, 1, 2, 0]);
    assert.deepEqual(loaded.encode("hello"), letterTokenizer.encode("hello"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("rlhf demo (quick): RM beats chance, PPO and DPO raise the gold reward", { timeout: 300_000 }, async () => {
  const outputDir = await mkdtemp(join(tmpdir(), "demo-"));
  try {
    const report = await runDemo({ seed: 0, quick: true, outputDir, log: () => {} });
    assert.ok(report.rmAccuracy > 0.65, `RM accuracy ${report.rmAccuracy}`);
    const [ref, ppo, dpo] = report.policies;
    assert.equal(ref!.kl, 0);
    assert.ok(ppo!.gold > ref!.gold + 0.1, `PPO gold ${ppo!.gold} vs reference ${ref!.gold}`);
    assert.ok(dpo!.gold > ref!.gold + 0.05, `DPO gold ${dpo!.gold} vs reference ${ref!.gold}`);
    assert.ok(ppo!.kl > 0 && dpo!.kl > 0);
    // Each stage left what its command leaves: a loadable model and its metrics.
    for (const model of ["pretrain", "sft", "rm", "dpo", "ppo/policy"]) assert.ok(existsSync(join(outputDir, model, "config.json")), `${model}/config.json`);
    for (const stage of ["pretrain", "sft", "rm", "dpo", "ppo"]) assert.ok(existsSync(join(outputDir, stage, "metrics.jsonl")), `${stage}/metrics.jsonl`);
  } finally {
    await rm(outputDir, { recursive: true, force: true });
  }
});
