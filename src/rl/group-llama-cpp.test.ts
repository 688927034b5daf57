// `rlhf grpo`, `rlhf rloo` and `rlhf online-dpo` with rollouts sampled by llama.cpp
// (--rollout_engine llama.cpp) on stories260K: every metric METRICS.md documents for the option is
// logged, llama.cpp's log-probs sit near the trainer's, the truncated importance weights reach
// GRPO's loss, a LoRA policy is sampled from its base with the adapter of each step, and a run
// killed after a checkpoint and resumed ends bit for bit where an uninterrupted one does
// (llama.cpp's sampling is seeded, and its decode batches are made up the same way every run).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors } from "../io/safetensors.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { RLHF_BIN, runRlhfOk } from "../cli/test-helpers.ts";
import { documentedMetrics } from "./test-helpers.ts";
import { policyRolloutEngine } from "./rollout-engine-config.ts";
import { parseConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import { initEngine } from "../engine/runtime.ts";
import { initParams } from "../models/params.ts";
import { release } from "../engine/arrays.ts";

const setUp = (async () => {
  const dir = await tempDir();
  writeFileSync(join(dir, "reward.mjs"), "export function reward(p, cs) { return cs.map((c) => (c.match(/\\b(happy|fun|play|friends)\\b/g) ?? []).length - c.length / 100); }\n");
  const prompts = ["Once upon a time there", "Tom and Lily went to", "The little dog saw a", "One day, a girl named"];
  writeFileSync(join(dir, "prompts.jsonl"), prompts.map((p) => JSON.stringify({ prompt: p })).join("\n") + "\n");
  const args = (command: string, output: string, extra: string[]) => [
    command, "--policy", sharedData("llama2c/stories260K.bin"), "--reward", join(dir, "reward.mjs"), "--prompts", join(dir, "prompts.jsonl"), "--output", output,
    "--rollout_engine", "llama.cpp", "--sample_steps", "1", ...extra,
  ];
  return { dir, args };
})();

const records = (dir: string, file = "metrics.jsonl") => readFileSync(join(dir, file), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
const SAMPLING = documentedMetrics("rlhf ppo", "Logged with --rollout_engine llama.cpp");

/** Runs `run(output)` straight, and again killed with SIGKILL once `checkpoint` is written and resumed; the two must end identical. */
async function assertResumesExactly(run: (output: string) => string[], dir: string, checkpoint: number, policyFile: string): Promise<void> {
  const straight = join(dir, "straight");
  runRlhfOk(run(straight));
  const killed = join(dir, "killed");
  const child = spawn(process.execPath, [RLHF_BIN, ...run(killed)], { stdio: "ignore" });
  const exit = new Promise<NodeJS.Signals | null>((done) => child.on("exit", (_code, signal) => done(signal)));
  while (!existsSync(join(killed, `checkpoint-${checkpoint}`, "trainer_state.json"))) await new Promise((r) => setTimeout(r, 10));
  child.kill("SIGKILL");
  assert.equal(await exit, "SIGKILL", "the run finished before it could be killed");
  const resumed = runRlhfOk([...run(killed), "--resume"]);
  assert.match(resumed.stderr, /resumed from .*checkpoint-\d+ \(step \d+ of \d+\)/);
  const weights = async (d: string) => (await readSafetensors(join(d, "policy", policyFile))).tensors;
  const [a, b] = [await weights(straight), await weights(killed)];
  const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  for (const [key, t] of a) assert.ok(bytes(t.data).equals(bytes(b.get(key)!.data)), `${key} differs after resume`);
  assert.deepEqual(records(killed), records(straight));
  assert.deepEqual(records(killed, "samples.jsonl"), records(straight, "samples.jsonl"));
}

/** llama.cpp's F16 KV cache against the trainer's float32: close, not equal (the F32 cache: ~1e-6, rollout-engine.test.ts). */
function assertNearOnPolicy(m: Record<string, number>): void {
  assert.ok(m["sampling/sampling_logp_difference/max"]! < 0.05, `log-probs differ by ${m["sampling/sampling_logp_difference/max"]}`);
  assert.ok(Math.abs(m["sampling/importance_sampling_ratio/mean"]! - 1) < 0.01, `ratio ${m["sampling/importance_sampling_ratio/mean"]}`);
}

test("rlhf grpo --rollout_engine llama.cpp logs the sampling metrics, and a run killed and resumed matches an uninterrupted one exactly", { timeout: 300_000 }, async () => {
  const { args } = await setUp;
  const dir = await tempDir();
  // Two updates per step in two micro-batches each, so the weights are used off-policy too.
  const run = (output: string) => args("grpo", output, ["--total_steps", "5", "--save_steps", "1", "--batch_size", "2", "--num_generations", "4", "--max_completion_length", "12", "--num_iterations", "2", "--gradient_accumulation_steps", "2", "--beta", "0.04", "--learning_rate", "1e-3"]);
  await assertResumesExactly(run, dir, 2, "model.safetensors");
  const expected = [...documentedMetrics("rlhf grpo"), ...documentedMetrics("rlhf grpo", "Logged with clipping"), "kl", ...SAMPLING, "step"].sort();
  for (const m of records(join(dir, "straight"))) {
    assert.deepEqual(Object.keys(m).sort(), expected);
    for (const [key, value] of Object.entries(m)) assert.ok(Number.isFinite(value), `${key} = ${value}`);
    assertNearOnPolicy(m);
    assert.ok(m["sampling/importance_sampling_ratio/max"]! <= 2, "the logged ratio is the truncated weight");
  }
});

test("rlhf grpo --rollout_engine llama.cpp: the truncated importance weights reach the loss (on and off: the same samples, another loss); rloo runs with its sequence-level weights", { timeout: 300_000 }, async () => {
  const { args } = await setUp;
  const dir = await tempDir();
  const grpo = (output: string, correction: string) => args("grpo", output, ["--total_steps", "1", "--batch_size", "2", "--num_generations", "4", "--max_completion_length", "12", "--rollout_importance_sampling_correction", correction]);
  runRlhfOk(grpo(join(dir, "on"), "true"));
  runRlhfOk(grpo(join(dir, "off"), "false"));
  assert.deepEqual(records(join(dir, "on"), "samples.jsonl"), records(join(dir, "off"), "samples.jsonl"), "llama.cpp's samples are reproducible");
  const [on, off] = [records(join(dir, "on"))[0]!, records(join(dir, "off"))[0]!];
  assert.notEqual(on.loss, off.loss, "the weights did not reach the loss");
  // On-policy (one update) dapo's loss is −Σ w·A / tokens: on and off differ by at most max|w − 1|·max|A|, |A| ≤ √(G − 1) within a group of G = 4.
  const departure = Math.exp(off["sampling/sampling_logp_difference/max"]!) - 1;
  assert.ok(Math.abs(on.loss! - off.loss!) <= Math.sqrt(3) * departure, `losses ${on.loss} vs ${off.loss}, weights within 1 ± ${departure}`);
  // Without the correction the plain ratio is logged (here the same, as none reaches the cap).
  assert.equal(off["sampling/importance_sampling_ratio/mean"], on["sampling/importance_sampling_ratio/mean"]);

  const rloo = join(dir, "rloo");
  runRlhfOk(args("rloo", rloo, ["--total_steps", "2", "--batch_size", "2", "--num_generations", "2", "--max_completion_length", "12", "--learning_rate", "1e-3"]));
  for (const m of records(rloo)) {
    assert.deepEqual(Object.keys(m).sort(), [...documentedMetrics("rlhf grpo"), ...documentedMetrics("rlhf grpo", "Logged with clipping"), "kl", ...SAMPLING, "step"].sort());
    // One weight per completion: the product of ~12 token ratios, still near 1.
    assert.ok(Math.abs(m["sampling/importance_sampling_ratio/mean"]! - 1) < 0.05, `ratio ${m["sampling/importance_sampling_ratio/mean"]}`);
  }
});

test("rlhf grpo --use_peft --rollout_engine llama.cpp: llama.cpp samples the base with each step's adapter, near the trainer's policy once the adapter has moved", { timeout: 300_000 }, async () => {
  const { args } = await setUp;
  const out = join(await tempDir(), "lora");
  runRlhfOk(args("grpo", out, ["--total_steps", "3", "--batch_size", "2", "--num_generations", "4", "--max_completion_length", "12", "--learning_rate", "3e-2", "--use_peft", "--lora_r", "4", "--lora_target_modules", "all-linear", "--disable_dropout"]));
  const history = records(out);
  for (const m of history) assertNearOnPolicy(m);
  // Step 3 samples from an adapter with B ≠ 0: objective/kl is the policy's distance from the base.
  assert.ok(Math.abs(history[2]!["objective/kl"]!) > 0, "the adapter never moved the policy: the adapter sync was not exercised");
  const adapter = (await readSafetensors(join(out, "policy", "adapter_model.safetensors"))).tensors;
  assert.ok([...adapter].some(([k, t]) => k.includes("lora_B") && t.data.some((x) => x !== 0)));
});

test("rlhf online-dpo --rollout_engine llama.cpp logs the sampling metrics (untruncated), and a run killed and resumed matches an uninterrupted one exactly", { timeout: 300_000 }, async () => {
  const { args } = await setUp;
  const dir = await tempDir();
  const run = (output: string) => args("online-dpo", output, ["--total_steps", "5", "--batch_size", "4", "--response_length", "12", "--save_steps", "1", "--learning_rate", "1e-4", "--gradient_accumulation_steps", "2"]);
  await assertResumesExactly(run, dir, 2, "model.safetensors");
  for (const m of records(join(dir, "straight"))) {
    assert.deepEqual(Object.keys(m).sort(), [...documentedMetrics("rlhf online-dpo"), ...documentedMetrics("rlhf online-dpo", "Logged with --rollout_engine llama.cpp"), "step"].sort());
    // Scored at the sampling temperature (0.9) for the comparison, though the loss scores at 1.
    assertNearOnPolicy(m);
  }
});

test("an external rollout engine refuses a policy with frozen parts that are not an adapter's base", async () => {
  await initEngine();
  const arch = architectureFor(parseConfig({ model_type: "llama", vocab_size: 32, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 16 }, "tiny"));
  const frozen = initParams(arch, 1);
  assert.throws(() => policyRolloutEngine({ rollout_engine: "llama.cpp", rollout_dtype: "f32" }, { arch, frozen }), /a policy on frozen weights needs its adapter's config for an external rollout engine/);
  assert.throws(() => policyRolloutEngine({ rollout_engine: "jax-js", rollout_dtype: "q8_0" }, { arch, frozen: {} }), /--rollout_dtype q8_0 needs --rollout_engine llama\.cpp/);
  // The built-in generator reads whatever it is given.
  const builtIn = policyRolloutEngine({ rollout_engine: "jax-js", rollout_dtype: "f32" }, { arch, frozen });
  await builtIn.dispose();
  release(frozen);
});
