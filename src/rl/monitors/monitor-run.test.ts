// The monitors' actions in a real `rlhf ppo` run on the tiny stories model: stop ends the run with
// the checkpoint before the firing step as DIR/policy; checkpoint keeps that step's weights out of
// save_total_limit's reach; a run killed after a checkpoint and resumed leaves events.jsonl as an
// uninterrupted run does. `--monitor_kl_ceiling 0` makes the KL ceiling fire as soon as the policy
// has moved from the reference (KL is exactly 0 at step 1, when they are the same weights).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sharedData, tempDir } from "../../io/test-helpers.ts";
import { KEPT_MARKER, listCheckpoints } from "../../train/checkpoint.ts";

const bin = fileURLToPath(new URL("../../../bin/rlhf.mjs", import.meta.url));

async function ppoArgs(dir: string): Promise<string[]> {
  await writeFile(join(dir, "reward.mjs"), 'export function reward(p, cs) { return cs.map((c) => (c.match(/\\b(happy|fun|play|friends)\\b/g) ?? []).length); }\n');
  await writeFile(join(dir, "prompts.jsonl"), ["Once upon a time there", "Tom and Lily went to", "The little dog saw a", "One day, a girl named"].map((p) => JSON.stringify({ prompt: p })).join("\n") + "\n");
  return [bin, "ppo", "--policy", sharedData("llama2c/stories260K.bin"), "--reward", join(dir, "reward.mjs"), "--prompts", join(dir, "prompts.jsonl"), "--batch_size", "4", "--response_length", "12", "--learning_rate", "1e-3", "--num_ppo_epochs", "1", "--monitor_kl_ceiling", "0"];
}

function rlhf(args: string[]) {
  const r = spawnSync(process.execPath, args, { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r;
}

const lines = async (path: string) => (await readFile(path, "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

test("monitor_action stop ends the run at the firing step with the checkpoint before it as DIR/policy", { timeout: 120_000 }, async () => {
  const dir = await tempDir();
  const out = join(dir, "run");
  const r = rlhf([...(await ppoArgs(dir)), "--total_steps", "6", "--save_steps", "1", "--monitor_action", "stop", "--output", out]);
  const events = await lines(join(out, "events.jsonl"));
  assert.ok(events.length >= 1, r.stderr);
  const step = events[0]!.step as number;
  assert.ok(step >= 2 && step < 6, `fired at ${step}`);
  // The one shape the dashboard reads, and every event of the last step only (the run ended there).
  for (const e of events) assert.deepEqual(Object.keys(e), ["step", "monitor", "value", "threshold", "message"]);
  assert.ok(events.every((e) => e.step === step));
  assert.equal(events[0]!.monitor, "kl_ceiling");
  assert.match(r.stderr, new RegExp(`monitor kl_ceiling fired at step ${step}: KL to the reference`));
  assert.match(r.stderr, new RegExp(`stopped at step ${step} by monitor .*checkpoint-${step - 1}, the last checkpoint before it`));
  assert.equal((await lines(join(out, "metrics.jsonl"))).at(-1)!.step, step);
  assert.deepEqual(listCheckpoints(out).map((c) => c.step), Array.from({ length: step - 1 }, (_, i) => i + 1));
  assert.deepEqual(await readFile(join(out, "policy", "model.safetensors")), await readFile(join(out, `checkpoint-${step - 1}`, "model.safetensors")));
  assert.ok(existsSync(join(out, "policy", "config.json")) && !existsSync(join(out, "policy", "optimizer.safetensors")) && !existsSync(join(out, "policy", "value")));
});

test("monitor_action checkpoint keeps the firing step's weights past save_total_limit; a resumed run's events.jsonl matches an uninterrupted one's", { timeout: 180_000 }, async () => {
  const dir = await tempDir();
  const args = [...(await ppoArgs(dir)), "--total_steps", "5", "--save_steps", "3", "--save_total_limit", "1", "--monitor_action", "checkpoint"];
  const straight = join(dir, "straight");
  rlhf([...args, "--output", straight]);
  const events = await lines(join(straight, "events.jsonl"));
  assert.ok(events.length >= 1);
  const kept = events[0]!.step as number;
  // checkpoint-5 is the last save; checkpoint-3 went to save_total_limit 1 unless a monitor kept it.
  const dirs = listCheckpoints(straight).map((c) => c.step);
  assert.ok(dirs.includes(kept) && dirs.includes(5), `checkpoints ${dirs.join(", ")}, kept ${kept}`);
  assert.deepEqual(dirs.filter((s) => s !== 5), [...new Set(events.map((e) => e.step as number))].filter((s) => s !== 5), "only the kept ones and the last");
  assert.deepEqual(JSON.parse(await readFile(join(straight, `checkpoint-${kept}`, KEPT_MARKER), "utf8")), events.filter((e) => e.step === kept));

  // Another run, as if killed after checkpoint-3 (the later checkpoints and the policy gone, a
  // line the killed run logged after the checkpoint left behind), then resumed.
  const interrupted = join(dir, "interrupted");
  rlhf([...args, "--save_total_limit", "null", "--save_steps", "1", "--monitor_action", "warn", "--output", interrupted]);
  assert.deepEqual(await lines(join(interrupted, "events.jsonl")), events);
  for (const s of [4, 5]) await rm(join(interrupted, `checkpoint-${s}`), { recursive: true });
  await rm(join(interrupted, "policy"), { recursive: true });
  await appendFile(join(interrupted, "events.jsonl"), JSON.stringify({ step: 4, monitor: "kl_ceiling", value: 9, threshold: 0, message: "from the killed run" }) + "\n");
  const resumed = rlhf([...args, "--save_total_limit", "null", "--save_steps", "1", "--monitor_action", "warn", "--output", interrupted, "--resume"]);
  assert.match(resumed.stderr, /resumed from .*checkpoint-3/);
  // The monitors' state came back with the checkpoint: a condition that held at step 3 does not fire again at 4.
  assert.deepEqual(await lines(join(interrupted, "events.jsonl")), events);
});
