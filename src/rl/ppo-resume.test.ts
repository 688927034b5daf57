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

async function policyWeights(dir: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(join(dir, "policy", "model.safetensors"));
  return new Map([...tensors].map(([k, t]) => [k, t.data]));
}

test("PPO killed with SIGKILL mid-run and resumed matches an uninterrupted run exactly", { timeout: 240_000 }, async () => {
  const dir = await tempDir();
  const args = await setup(dir);
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

  const [a, b] = [await policyWeights(straight), await policyWeights(interrupted)];
  for (const [name, data] of a) assert.deepEqual(b.get(name), data, `${name} differs after resume`);
  // The logs read like one clean run, value for value (the killed run's later lines are dropped).
  const records = (p: string, file: string) => readFile(join(p, file), "utf8").then((t) => t.trim().split("\n").map((l) => JSON.parse(l) as unknown));
  assert.deepEqual(await records(interrupted, "metrics.jsonl"), await records(straight, "metrics.jsonl"));
  assert.deepEqual(await records(interrupted, "samples.jsonl"), await records(straight, "samples.jsonl"));
  // The value model and the optimizer's moments of both networks are in every checkpoint.
  for (const f of ["model.safetensors", "optimizer.safetensors", "trainer_state.json", "value/model.safetensors", "value/config.json"]) assert.ok(existsSync(join(interrupted, "checkpoint-4", f)), f);

  // A fresh run into a directory that holds one is refused, before anything is loaded.
  const again = spawnSync(process.execPath, [...args, "--output", straight], { encoding: "utf8" });
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already holds a run .*checkpoint-4\); pass --resume/);
});
