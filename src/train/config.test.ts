// Trainer configs: TRL's defaults, then a JSON/YAML file, then flags; errors name file and field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../io/test-helpers.ts";
import { configOverrides, defaultRewardConfig, defaultSFTConfig, normaliseFlagNames, resolveConfig, rewardSpecs, sftSpecs, stepPlan } from "./config.ts";

test("defaults < YAML or JSON file < flags, with values from flags parsed by the field's kind", async () => {
  const dir = await tempDir();
  const yaml = join(dir, "sft.yaml");
  writeFileSync(yaml, "learning_rate: 3.0e-4\npacking: true\nmax_length: 256\neval_steps: null\n");
  const c = resolveConfig(defaultSFTConfig, sftSpecs, { file: yaml, overrides: { max_length: "128", completion_only_loss: "false" } });
  assert.equal(c.learning_rate, 3e-4);
  assert.equal(c.packing, true);
  assert.equal(c.max_length, 128);
  assert.equal(c.completion_only_loss, false);
  assert.equal(c.eval_steps, null);
  assert.equal(c.per_device_train_batch_size, 8, "untouched fields keep TRL's default");

  const json = join(dir, "rm.json");
  writeFileSync(json, JSON.stringify({ center_rewards_coefficient: 0.01, lr_scheduler_type: "cosine" }));
  const r = resolveConfig(defaultRewardConfig, rewardSpecs, { file: json, overrides: { center_rewards_coefficient: "none" } });
  assert.equal(r.center_rewards_coefficient, null);
  assert.equal(r.lr_scheduler_type, "cosine");
  assert.equal(r.learning_rate, 1e-5);
});

test("unknown fields and bad values are refused with the file or flag and the field named", async () => {
  const dir = await tempDir();
  const file = join(dir, "bad.yaml");
  writeFileSync(file, "learning_rat: 1e-4\n");
  assert.throws(() => resolveConfig(defaultSFTConfig, sftSpecs, { file }), /bad\.yaml: learning_rat is not a config field/);
  writeFileSync(file, "per_device_train_batch_size: 2.5\n");
  assert.throws(() => resolveConfig(defaultSFTConfig, sftSpecs, { file }), /bad\.yaml: per_device_train_batch_size must be an integer, got 2\.5/);
  writeFileSync(file, "- a\n- b\n");
  assert.throws(() => resolveConfig(defaultSFTConfig, sftSpecs, { file }), /bad\.yaml: expected a mapping/);
  assert.throws(() => resolveConfig(defaultSFTConfig, sftSpecs, { overrides: { lr_scheduler_type: "step" } }), /--lr_scheduler_type must be one of linear, cosine/);
  assert.throws(() => resolveConfig(defaultSFTConfig, sftSpecs, { overrides: { packing: "yes" } }), /--packing must be true or false/);
  assert.throws(() => resolveConfig(defaultRewardConfig, rewardSpecs, { overrides: { learning_rate: "-1" } }), /--learning_rate must be at least 0/);
  assert.throws(() => resolveConfig(defaultRewardConfig, rewardSpecs, { overrides: { max_length: "null" } }), /--max_length must not be null/);
});

test("--learning-rate is read as --learning_rate; other flags are left alone", () => {
  const argv = normaliseFlagNames(["--learning-rate", "1e-3", "--max-length=64", "--model", "x", "--eval-data", "y"], sftSpecs);
  assert.deepEqual(argv, ["--learning_rate", "1e-3", "--max_length=64", "--model", "x", "--eval-data", "y"]);
  assert.deepEqual(configOverrides({ learning_rate: "1e-3", model: "x", packing: undefined }, sftSpecs), { learning_rate: "1e-3" });
});

test("a true/false field given bare is true (--use_peft); a list of names comes comma-separated from a flag or as a list from a file", async () => {
  const argv = normaliseFlagNames(["--use_peft", "--lora_r", "8", "--packing", "false", "--use-rslora"], sftSpecs);
  assert.deepEqual(argv, ["--use_peft=true", "--lora_r", "8", "--packing", "false", "--use_rslora=true"]);
  const dir = await tempDir();
  const yaml = join(dir, "lora.yaml");
  writeFileSync(yaml, "use_peft: true\nlora_target_modules: [q_proj, v_proj]\n");
  assert.deepEqual(resolveConfig(defaultSFTConfig, sftSpecs, { file: yaml }).lora_target_modules, ["q_proj", "v_proj"]);
  const c = resolveConfig(defaultSFTConfig, sftSpecs, { overrides: { lora_target_modules: "q_proj, k_proj,o_proj", lora_modules_to_save: "none" } });
  assert.deepEqual([c.lora_target_modules, c.lora_modules_to_save], [["q_proj", "k_proj", "o_proj"], null]);
  assert.deepEqual([defaultSFTConfig.lora_r, defaultSFTConfig.lora_alpha, defaultSFTConfig.lora_dropout, defaultSFTConfig.lora_target_modules], [16, 32, 0.05, null], "TRL's ModelConfig defaults");
  assert.throws(() => resolveConfig(defaultSFTConfig, sftSpecs, { overrides: { lora_target_modules: "q_proj,,v_proj" } }), /--lora_target_modules must be names separated by commas/);
});

test("steps come from epochs unless max_steps is set; warmup_steps wins over warmup_ratio", () => {
  assert.deepEqual(stepPlan({ ...defaultSFTConfig, num_train_epochs: 2.5, warmup_ratio: 0.1 }, 10), { totalSteps: 25, warmupSteps: 3 });
  assert.deepEqual(stepPlan({ ...defaultSFTConfig, max_steps: 7, warmup_steps: 2, warmup_ratio: 0.5 }, 10), { totalSteps: 7, warmupSteps: 2 });
});
