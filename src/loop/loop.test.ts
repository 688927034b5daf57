// `rlhf loop` end to end on stories260K with a reward-module labeler, tiny: two rounds, a label
// budget in the second (the comparisons the first round's reward model is least sure of), and a
// run killed with SIGKILL in the second round's DPO that `rlhf loop resume` finishes with the same
// rounds.jsonl and the same final policy, byte for byte, without running a finished stage again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RLHF_BIN, runRlhf, runRlhfOk } from "../cli/test-helpers.ts";
import type { Comparison, LabeledComparison } from "./comparisons.ts";
import { rewardMargins, roundPaths } from "./round.ts";
import { sharedData } from "../io/test-helpers.ts";
import { readJsonLines } from "./run-dir.ts";
import { setUp } from "./test-helpers.ts";


test("rlhf loop killed with SIGKILL in a trainer resumes to the same rounds and policy without redoing finished stages", { timeout: 300_000 }, async () => {
  const { dir, config } = await setUp();
  const straight = join(dir, "straight");
  const done = runRlhfOk(["loop", "run", config, "--output", straight]);
  const rounds = readFileSync(join(straight, "rounds.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  assert.deepEqual(rounds.map((r) => r.round), [0, 1]);
  for (const r of rounds) {
    for (const field of ["rm_accuracy", "reward", "kl", "win_rate", "win_rate_vs_previous", "gold", "gold_reference"]) assert.ok(Number.isFinite(r[field]), `round ${r.round}: ${field} ${r[field]}`);
    assert.equal(r.labels, readJsonLines<LabeledComparison>(roundPaths(straight, r.round).labels).filter((l) => !l.tie).length);
  }
  assert.equal(rounds[1]!.labels_total, rounds[0]!.labels + rounds[1]!.labels);
  assert.ok(existsSync(join(straight, "policy", "model.safetensors")), "no final policy");
  assert.match(done.stdout, /\| round \| labels \|/);

  // The budget: 6 of the 8 comparisons, those of smallest |margin| under round 0's reward model.
  const comparisons = readJsonLines<Comparison>(roundPaths(straight, 1).comparisons);
  assert.equal(comparisons.length, 8);
  const margins = await rewardMargins(roundPaths(straight, 0).rm, comparisons);
  const expected = comparisons.map((c, i) => [Math.abs(margins[i]!), c.id] as const).sort((a, b) => a[0] - b[0]).slice(0, 6).map(([, id]) => id).sort();
  assert.deepEqual(readJsonLines<LabeledComparison>(roundPaths(straight, 1).labels).map((l) => l.id).sort(), expected);

  // Killed once round 1's DPO has written a checkpoint, then resumed.
  const killed = join(dir, "killed");
  const child = spawn(process.execPath, [RLHF_BIN, "loop", "run", config, "--output", killed], { stdio: "ignore" });
  const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  const dpo = roundPaths(killed, 1).policy;
  while (!(existsSync(dpo) && readdirSync(dpo).some((f) => f.startsWith("checkpoint-")))) {
    if (child.exitCode !== null) assert.fail(`the loop exited with ${child.exitCode} before round 1's DPO checkpoint`);
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill("SIGKILL");
  assert.equal(await exit, "SIGKILL");
  const marker = (stage: string) => readFileSync(join(roundPaths(killed, 0).dir, `${stage}.done`), "utf8");
  const before = marker("sample");
  const status = runRlhfOk(["loop", "status", killed]).stdout;
  assert.match(status, /round 1 of 2: done: sample, label, rm; next: policy/);
  assert.match(runRlhf(["loop", "run", config, "--output", killed]).stderr, /already holds a loop run; continue it with `rlhf loop resume/);

  const resumed = runRlhfOk(["loop", "resume", killed]);
  assert.doesNotMatch(resumed.stderr, /round 0:|round 1: (sample|label|rm)\n/, "a finished stage ran again");
  assert.match(resumed.stderr, /round 1: policy\n[\s\S]*resuming from .*checkpoint-\d+/);
  assert.equal(marker("sample"), before);
  assert.equal(readFileSync(join(killed, "rounds.jsonl"), "utf8"), readFileSync(join(straight, "rounds.jsonl"), "utf8"));
  assert.ok(readFileSync(join(killed, "policy", "model.safetensors")).equals(readFileSync(join(straight, "policy", "model.safetensors"))), "final policies differ");
});

test("rlhf loop names a bad config field and refuses a directory that is not a run", async () => {
  const { dir, config } = await setUp();
  writeFileSync(config, readFileSync(config, "utf8").replace("rounds: 2", "rounds: two"));
  assert.match(runRlhf(["loop", "run", config, "--output", join(dir, "x")]).stderr, /loop\.yaml: rounds must be an integer of at least 1, got "two"/);
  writeFileSync(config, readFileSync(config, "utf8").replace("rounds: two", "rounds: 2\nrollout_engine: vllm"));
  assert.match(runRlhf(["loop", "run", config, "--output", join(dir, "x")]).stderr, /loop\.yaml: rollout_engine must be jax-js or llama\.cpp, got "vllm"/);
  assert.match(runRlhf(["loop", "status", dir]).stderr, /is not a loop run directory/);
});

test("rlhf loop with policy_trainer ppo (rollouts, comparisons and evaluation on llama.cpp): each round's PPO starts from the last round's policy, leashed to the SFT model, rewarded by the round's reward model", { timeout: 300_000 }, async () => {
  const { dir, config } = await setUp({ rollout_engine: "llama.cpp" });
  const text = readFileSync(config, "utf8").replace(/^dpo: .*$/m, "policy_trainer: ppo\nppo: {total_steps: 2, batch_size: 4, response_length: 10, learning_rate: 3.0e-3, save_steps: 1, logging_steps: 1}");
  writeFileSync(config, text);
  const out = join(dir, "ppo");
  runRlhfOk(["loop", "run", config, "--output", out]);
  const rounds = readFileSync(join(out, "rounds.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  assert.deepEqual(rounds.map((r) => r.round), [0, 1]);
  for (const r of rounds) for (const field of ["rm_accuracy", "reward", "kl", "win_rate", "win_rate_vs_previous"]) assert.ok(Number.isFinite(r[field]), `round ${r.round}: ${field} ${r[field]}`);
  const firstKl = (r: number) => {
    const run = roundPaths(out, r, "ppo").policyRun;
    const [first] = readJsonLines<Record<string, number>>(join(run, "metrics.jsonl"));
    return first!["objective/kl"]!;
  };
  // Round 0 starts at the reference itself; round 1 starts from round 0's policy, already away from it.
  assert.equal(firstKl(0), 0);
  // The loop's engine reached the trainer (its config, and the engine-against-trainer ratio it logs).
  const ppoConfig = JSON.parse(readFileSync(join(roundPaths(out, 0, "ppo").policyRun, "ppo_config.json"), "utf8")) as { rollout_engine: string };
  assert.equal(ppoConfig.rollout_engine, "llama.cpp");
  const [firstStep] = readJsonLines<Record<string, number>>(join(roundPaths(out, 0, "ppo").policyRun, "metrics.jsonl"));
  assert.ok(Number.isFinite(firstStep!["sampling/importance_sampling_ratio/mean"]), JSON.stringify(firstStep));
  assert.ok(firstKl(1) > 0, `round 1's first KL to the SFT model is ${firstKl(1)}`);
  const state = JSON.parse(readFileSync(join(roundPaths(out, 1, "ppo").policyRun, "checkpoint-2", "trainer_state.json"), "utf8")) as { ref_model?: string };
  assert.equal(state.ref_model, sharedData("llama2c/stories260K.bin"));
  assert.ok(readFileSync(join(out, "policy", "model.safetensors")).equals(readFileSync(join(roundPaths(out, 1, "ppo").policy, "model.safetensors"))), "OUT/policy is not round 1's PPO policy");
});
