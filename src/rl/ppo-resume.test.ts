// `kill -9` in the middle of a PPO run, then `--resume`, ends with the same policy, bit for bit,
// as a run that was never interrupted (TRL cannot resume PPO at all).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { initEngine } from "../engine/runtime.ts";
import { loadModel, saveModel } from "../models/load.ts";
import { rewardModelFromCausalLm } from "../train/reward.ts";

const bin = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));

async function setup(dir: string): Promise<string[]> {
  await writeFile(join(dir, "reward.mjs"), 'export function reward(p, cs) { return cs.map((c) => (c.match(/\\b(happy|fun|play|friends)\\b/g) ?? []).length); }\n');
  const prompts = ["Once upon a time there", "Tom and Lily went to", "The little dog saw a", "One day, a girl named"];
  await writeFile(join(dir, "prompts.jsonl"), prompts.map((p) => JSON.stringify({ prompt: p })).join("\n") + "\n");
  return [
    bin, "ppo", "--policy", sharedData("llama2c/stories260K.bin"), "--reward", join(dir, "reward.mjs"), "--prompts", join(dir, "prompts.jsonl"),
    "--total_steps", "4", "--batch_size", "4", "--response_length", "12", "--save_steps", "1", "--learning_rate", "1e-4", "--num_ppo_epochs", "2", "--num_mini_batches", "2", "--sample_steps", "1",
  ];
}

async function weights(path: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(path);
  return new Map([...tensors].map(([k, t]) => [k, t.data]));
}

/**
 * Runs `args` into DIR/straight and into DIR/interrupted, kills the second after checkpoint-2 and
 * resumes it: the final policy (`policyFile` in DIR/policy), the logs and the samples must be the same.
 */
async function assertPpoResumes(dir: string, args: string[], policyFile: string): Promise<{ straight: string; interrupted: string }> {
  const straight = join(dir, "straight");
  const r = spawnSync(process.execPath, [...args, "--output", straight], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);

  const interrupted = join(dir, "interrupted");
  const child = spawn(process.execPath, [...args, "--output", interrupted], { stdio: "ignore" });
  // Kill as soon as the second checkpoint is complete (its state file is written last).
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(join(interrupted, "checkpoint-2", "trainer_state.json"))) {
        clearInterval(poll);
        child.kill("SIGKILL");
        resolve();
      }
    }, 20);
    child.on("exit", () => {
      clearInterval(poll);
      reject(new Error("the run finished before it could be killed"));
    });
  });
  await new Promise((resolve) => child.on("exit", resolve));
  assert.ok(!existsSync(join(interrupted, "policy")), "the killed run must not have finished");
  const resumed = spawnSync(process.execPath, [...args, "--output", interrupted, "--resume"], { encoding: "utf8" });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resumed from .*checkpoint-\d/);

  const [a, b] = [await weights(join(straight, "policy", policyFile)), await weights(join(interrupted, "policy", policyFile))];
  for (const [name, data] of a) assert.deepEqual(b.get(name), data, `${name} differs after resume`);
  // The logs read like one clean run, value for value (the killed run's later lines are dropped).
  assert.deepEqual(await records(interrupted, "metrics.jsonl"), await records(straight, "metrics.jsonl"));
  assert.deepEqual(await records(interrupted, "samples.jsonl"), await records(straight, "samples.jsonl"));
  return { straight, interrupted };
}

const records = (p: string, file: string) => readFile(join(p, file), "utf8").then((t) => t.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>));

test("PPO killed with SIGKILL mid-run and resumed matches an uninterrupted run exactly", { timeout: 240_000 }, async () => {
  const dir = await tempDir();
  const args = await setup(dir);
  const { straight, interrupted } = await assertPpoResumes(dir, args, "model.safetensors");
  // The value model and the optimizer's moments of both networks are in every checkpoint.
  for (const f of ["model.safetensors", "optimizer.safetensors", "trainer_state.json", "value/model.safetensors", "value/config.json"]) assert.ok(existsSync(join(interrupted, "checkpoint-4", f)), f);

  // A fresh run into a directory that holds one is refused, before anything is loaded.
  const again = spawnSync(process.execPath, [...args, "--output", straight], { encoding: "utf8" });
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already holds a run .*checkpoint-4\); pass --resume/);
});

test("LoRA PPO (policy adapter; value = a second adapter and head on the same frozen base; reference = the base) killed with SIGKILL and resumed matches an uninterrupted run exactly", { timeout: 240_000 }, async () => {
  const dir = await tempDir();
  const args = [...(await setup(dir)), "--use_peft", "--lora_r", "4", "--lora_target_modules", "all-linear", "--learning_rate", "3e-3", "--gradient_accumulation_steps", "2"];
  const { straight, interrupted } = await assertPpoResumes(dir, args, "adapter_model.safetensors");
  const value = await weights(join(interrupted, "checkpoint-4", "value", "adapter_model.safetensors"));
  assert.deepEqual(value, await weights(join(straight, "checkpoint-4", "value", "adapter_model.safetensors")), "the value adapter resumes too");
  assert.ok(value.has("base_model.model.score.weight") && value.has("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"), [...value.keys()].join(", "));
  const valueConfig = JSON.parse(await readFile(join(interrupted, "checkpoint-4", "value", "adapter_config.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual([valueConfig.task_type, valueConfig.modules_to_save], ["SEQ_CLS", ["score"]]);
  const moments = [...(await weights(join(interrupted, "checkpoint-4", "optimizer.safetensors"))).keys()];
  assert.ok(moments.every((k) => /lora_[AB]\.weight$|value\/score\.weight$/.test(k)), `moments of the two adapters only: ${moments.filter((k) => !/lora_/.test(k)).join(", ")}`);
  const policy = await weights(join(straight, "policy", "adapter_model.safetensors"));
  assert.ok([...policy.keys()].every((k) => /lora_[AB]\.weight$/.test(k)));
  // The reference is the base with the adapter off: a fresh adapter (B = 0) is the base exactly, so
  // the first rollout has no KL at all; later ones do, once the adapter has moved.
  const kl = (await records(straight, "metrics.jsonl")).map((m) => m["objective/kl"] as number);
  assert.equal(kl[0], 0);
  assert.ok(kl.slice(1).some((x) => x !== 0), kl.join(", "));
});

test("LoRA PPO with --value-model (TRL's setup: the policy an adapter, the value model that whole reward model, trained whole) resumes exactly, the value model whole in every checkpoint", { timeout: 240_000 }, async () => {
  const dir = await tempDir();
  await initEngine();
  const rm = rewardModelFromCausalLm(await loadModel(sharedData("llama2c/stories260K.bin")), { seed: 5, padTokenId: 0 });
  await saveModel(join(dir, "rm"), rm.config, rm.params);
  const args = [...(await setup(dir)), "--use_peft", "--lora_r", "4", "--lora_target_modules", "all-linear", "--learning_rate", "3e-3", "--value-model", join(dir, "rm")];
  const { straight, interrupted } = await assertPpoResumes(dir, args, "adapter_model.safetensors");
  assert.ok(existsSync(join(interrupted, "checkpoint-4", "value", "config.json")) && !existsSync(join(interrupted, "checkpoint-4", "value", "adapter_config.json")), "a whole value model");
  const [start, trained] = [await weights(join(dir, "rm", "model.safetensors")), await weights(join(straight, "checkpoint-4", "value", "model.safetensors"))];
  assert.deepEqual([...trained.keys()].sort(), [...start.keys()].sort());
  assert.ok([...start].some(([k, w]) => w.some((x, i) => x !== trained.get(k)![i])), "the value model's weights are trained");
  // Moments of the policy's adapter and of every weight of the value model, nothing else.
  const moments = [...(await weights(join(interrupted, "checkpoint-4", "optimizer.safetensors"))).keys()].map((k) => k.replace(/^exp_avg(_sq)?\./, ""));
  const stray = moments.filter((k) => !/lora_[AB]\.weight$/.test(k) && !(k.startsWith("value/") && start.has(k.slice("value/".length))));
  assert.deepEqual(stray, []);
  assert.equal(new Set(moments.filter((k) => k.startsWith("value/"))).size, start.size);
});
