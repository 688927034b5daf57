// `rlhf grpo` and `rlhf rloo` end to end on a tiny model: TRL's metric names in metrics.jsonl,
// checkpoints, samples and a loadable final policy; clear errors for bad input; and a run killed
// with SIGKILL after a checkpoint, then resumed, ends with the same policy, bit for bit, as an
// uninterrupted one (the learning rate anneals over total_steps, so only a true resume matches).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { toHost } from "../engine/arrays.ts";
import { initEngine } from "../engine/runtime.ts";
import { tempDir } from "../io/test-helpers.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { disposeModel, loadModel } from "../models/load.ts";
import { tinyModelDir } from "../train/test-helpers.ts";
import { RLHF_BIN, runRlhf, runRlhfOk } from "../cli/test-helpers.ts";


/** TRL's GRPOTrainer names (one process), plus ours for comparison with PPO. */
const TRL_METRICS = [
  "reward", "reward_std", "frac_reward_zero_std", "num_tokens", "epoch", "entropy", "loss", "grad_norm", "learning_rate",
  "completions/mean_length", "completions/min_length", "completions/max_length", "completions/clipped_ratio",
  "completions/mean_terminated_length", "completions/min_terminated_length", "completions/max_terminated_length",
  "clip_ratio/low_mean", "clip_ratio/low_min", "clip_ratio/high_mean", "clip_ratio/high_max", "clip_ratio/region_mean",
];

const setUp = (async () => {
  await initEngine();
  const dir = await tempDir();
  const model = await tinyModelDir(dir);
  writeFileSync(join(dir, "reward.mjs"), "export function reward(prompts, completions) { return completions.map((c) => (c.match(/[aeiou]/g) ?? []).length / Math.max(1, c.length)); }\n");
  const prompts = ["Once upon a time", "The dog", "Lily saw a", "One day", "Tom and Sue"];
  writeFileSync(join(dir, "prompts.jsonl"), prompts.map((p) => JSON.stringify({ prompt: p })).join("\n") + "\n");
  const args = (algorithm: string, output: string, extra: string[] = []) => [
    algorithm, "--policy", model, "--reward", join(dir, "reward.mjs"), "--prompts", join(dir, "prompts.jsonl"), "--output", output,
    "--batch_size", "2", "--num_generations", "4", "--max_completion_length", "8", "--learning_rate", "3e-3", ...extra,
  ];
  return { dir, model, args };
})();

const rlhf = runRlhf;
const ok = runRlhfOk;

const records = (dir: string, file: string) => readFileSync(join(dir, file), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

test("rlhf grpo: a few steps write TRL-named metrics, checkpoints, samples and a policy that loads and moved", async () => {
  const { dir, model, args } = await setUp;
  const out = join(dir, "grpo");
  ok(args("grpo", out, ["--total_steps", "3", "--save_steps", "2", "--beta", "0.04"]));
  const metrics = records(out, "metrics.jsonl");
  assert.deepEqual(metrics.map((m) => m.step), [1, 2, 3]);
  for (const m of metrics) {
    for (const key of [...TRL_METRICS, "kl"]) assert.ok(Number.isFinite(m[key]), `${key} = ${m[key]}`);
  }
  assert.equal(metrics[2]!.epoch, (3 * 2) / 5);
  assert.ok((metrics[2]!.num_tokens as number) > (metrics[0]!.num_tokens as number));
  for (const step of [2, 3]) {
    for (const f of ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json", "tokenizer.json"]) assert.ok(existsSync(join(out, `checkpoint-${step}`, f)), `checkpoint-${step}/${f}`);
  }
  assert.ok(!existsSync(join(out, "checkpoint-1")));
  assert.ok(records(out, "samples.jsonl").every((s) => typeof s.completion === "string" && typeof s.score === "number" && typeof s.advantage === "number"));
  assert.equal(JSON.parse(readFileSync(join(out, "grpo_config.json"), "utf8")).beta, 0.04);

  const [start, trained] = [await loadModel(model), await loadModel(join(out, "policy"))];
  for (const [name, p] of Object.entries(start.params)) {
    const [a, b] = [await toHost(p.ref), await toHost(trained.params[name]!.ref)];
    assert.ok(a.some((x, i) => x !== b[i]), `${name} did not change`);
  }
  disposeModel(start);
  disposeModel(trained);
});

test("rlhf rloo logs the KL it subtracts from the reward as kl; a grpo run will not resume it; bad input is refused clearly", async () => {
  const { dir, args } = await setUp;
  const out = join(dir, "rloo");
  ok(args("rloo", out, ["--total_steps", "2", "--save_steps", "1"]));
  const metrics = records(out, "metrics.jsonl");
  for (const m of metrics) for (const key of [...TRL_METRICS, "kl", "objective/kl"]) assert.ok(Number.isFinite(m[key]), `${key} = ${m[key]}`);
  const num = (m: Record<string, unknown>, key: string) => m[key] as number;
  const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1e-3, Math.abs(b)), `${what}: ${a} vs ${b}`);
  // Step 1 samples from the starting policy, which is the reference: log π − log π_ref is 0 at every token.
  for (const key of ["objective/kl", "kl"]) assert.ok(Math.abs(num(metrics[0]!, key)) < 1e-7, `step 1: ${key} = ${num(metrics[0]!, key)}, not 0`);
  // Step 2 samples from the updated policy. `kl` is the per-token mean of the k1 estimate whose
  // per-completion sum objective/kl averages, so kl × the mean completion length gives objective/kl back.
  const [second, beta] = [metrics[1]!, JSON.parse(readFileSync(join(out, "rloo_config.json"), "utf8")).beta as number];
  assert.ok(Math.abs(num(second, "objective/kl")) > 1e-6, `objective/kl = ${num(second, "objective/kl")} after an update`);
  near(num(second, "kl") * num(second, "completions/mean_length"), num(second, "objective/kl"), "kl × completions/mean_length");
  // RLOO takes β·KL off each score (β from rloo_config.json, the defaults' 0.05): the mean reward minus β·objective/kl.
  assert.equal(beta, 0.05);
  near(num(second, "objective/rlhf_reward"), num(second, "reward") - beta * num(second, "objective/kl"), "objective/rlhf_reward");

  const wrong = rlhf(args("grpo", out, ["--total_steps", "3", "--resume"]));
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /is a rloo checkpoint; resume it with rlhf rloo/);
  const again = rlhf(args("rloo", out, ["--total_steps", "3"]));
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already holds a run .*checkpoint-2\); pass --resume to continue it/);
  const otherShape = rlhf(args("rloo", out, ["--total_steps", "3", "--resume", "--num_generations", "2"]));
  assert.match(otherShape.stderr, /trained with num_generations = 4, now 2/);
  // save_total_limit keeps the newest checkpoints; the run still resumes from the last one.
  const limited = join(dir, "rloo-limited");
  ok(args("rloo", limited, ["--total_steps", "3", "--save_steps", "1", "--save_total_limit", "2"]));
  assert.deepEqual(readdirSync(limited).filter((n) => n.startsWith("checkpoint-")).sort(), ["checkpoint-2", "checkpoint-3"]);
  assert.match(ok([...args("rloo", limited, ["--total_steps", "4", "--save_total_limit", "2"]), "--resume"]).stderr, /resumed from .*checkpoint-3 \(step 3 of 4\)/);

  const help = rlhf(["grpo", "--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--num_generations N\s+completions per prompt/);
  const cases: [string[], RegExp][] = [
    [args("grpo", join(dir, "x"), ["--num_generations", "1"]), /--num_generations must be at least 2, got 1/],
    [args("grpo", join(dir, "x"), ["--loss_type", "ppo"]), /--loss_type must be one of grpo, dr_grpo, dapo, bnpo, cispo, sapo/],
    [args("grpo", join(dir, "x"), ["--importance_sampling_level", "word"]), /--importance_sampling_level must be one of token, sequence/],
    [args("grpo", join(dir, "x"), ["--loss_type", "sapo", "--sapo_temperature_neg", "0"]), /sapo_temperature_pos and sapo_temperature_neg must be above 0/],
    [args("grpo", join(dir, "x"), ["--epsilon_high=-1"]), /--epsilon_high must be at least 0, got -1/],
    [args("grpo", join(dir, "x"), ["--max_completion_length", "64"]), /leaves no room for a prompt in the policy's context of 64/],
    [args("grpo", join(dir, "x"), ["--gradient_accumulation_steps", "3"]), /must divide batch_size × num_generations \(8\)/],
    [args("grpo", join(dir, "x")).map((a) => (a.endsWith("prompts.jsonl") ? join(dir, "missing.jsonl") : a)), /prompt file not found/],
    [args("grpo", join(dir, "x")).map((a) => (a.endsWith("reward.mjs") ? join(dir, "missing.mjs") : a)), /reward source not found/],
    [["grpo", "--policy", join(dir, "tiny"), "--prompts", join(dir, "prompts.jsonl"), "--output", join(dir, "x")], /--reward is required/],
  ];
  for (const [argv, message] of cases) {
    const r = rlhf(argv);
    assert.notEqual(r.status, 0, argv.join(" "));
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "a bad input should not print a stack trace");
  }
});

test("rlhf grpo --loss_type cispo / sapo / grpo (GSPO, clip-higher, truncated completions masked) run and log their own metrics", async () => {
  const { dir, args } = await setUp;
  const clipping = ["clip_ratio/low_mean", "clip_ratio/low_min", "clip_ratio/high_mean", "clip_ratio/high_max", "clip_ratio/region_mean"];
  const runs: [string, string[], string[]][] = [
    ["cispo", ["--loss_type", "cispo", "--importance_sampling_level", "sequence"], ["cispo_clip_ratio"]],
    ["sapo", ["--loss_type", "sapo", "--mask_truncated_completions", "true", "--sapo_temperature_neg", "2"], []],
    ["gspo", ["--loss_type", "grpo", "--importance_sampling_level", "sequence", "--epsilon_high", "0.28", "--scale_rewards", "batch"], clipping],
  ];
  for (const [name, flags, own] of runs) {
    const out = join(dir, name);
    // Two updates per step, so the second sees ratios away from 1.
    ok(args("grpo", out, ["--total_steps", "2", "--num_iterations", "2", "--gradient_accumulation_steps", "2", ...flags]));
    const saved = JSON.parse(readFileSync(join(out, "grpo_config.json"), "utf8")) as Record<string, unknown>;
    for (let i = 0; i < flags.length; i += 2) assert.equal(String(saved[flags[i]!.slice(2)]), flags[i + 1], `${name}: ${flags[i]} not in grpo_config.json`);
    for (const m of records(out, "metrics.jsonl")) {
      for (const key of [...TRL_METRICS.filter((k) => !clipping.includes(k)), ...own]) assert.ok(Number.isFinite(m[key]), `${name}: ${key} = ${m[key]}`);
      for (const key of [...clipping, "cispo_clip_ratio"].filter((k) => !own.includes(k))) assert.ok(!(key in m), `${name} logs ${key}`);
    }
  }
  // RLOO's help marks the GRPO-only fields; epsilon_high and mask_truncated_completions apply to both.
  const help = ok(["rloo", "--help"]).stdout;
  for (const field of ["loss_type", "importance_sampling_level", "sapo_temperature_pos", "scale_rewards"]) assert.match(help, new RegExp(`--${field} [A-Z]+ .*GRPO only; RLOO ignores it`));
  for (const field of ["epsilon_high", "mask_truncated_completions"]) assert.doesNotMatch(help, new RegExp(`--${field} [A-Z]+ .*GRPO only`));
});

// LoRA: an adapter on the frozen policy, with lora_dropout on (GRPO keeps dropout, as TRL's GRPOConfig does).
const loraFlags = ["--use_peft", "--lora_r", "4", "--lora_dropout", "0.1", "--lora_target_modules", "all-linear"];

for (const lora of [false, true]) {
  test(`rlhf grpo${lora ? " --use_peft (dropout on)" : ""} killed with SIGKILL after a checkpoint and resumed matches an uninterrupted run exactly`, async () => {
    const { dir, args } = await setUp;
    const name = lora ? "lora" : "full";
    const file = lora ? "adapter_model.safetensors" : "model.safetensors";
    // Two updates per step in two micro-batches each, so the optimizer state and RNG matter too.
    const run = (output: string, extra: string[] = []) =>
      args("grpo", output, ["--total_steps", lora ? "6" : "12", "--save_steps", "1", "--beta", "0.04", "--num_iterations", "2", "--gradient_accumulation_steps", "2", "--sample_steps", "1", ...(lora ? loraFlags : []), ...extra]);
    const straight = join(dir, `straight-${name}`);
    ok(run(straight));

    const killed = join(dir, `killed-${name}`);
    const child = spawn(process.execPath, [RLHF_BIN, ...run(killed)], { stdio: "ignore" });
    const exit = new Promise<NodeJS.Signals | null>((done) => child.on("exit", (_code, signal) => done(signal)));
    while (!existsSync(join(killed, "checkpoint-3", "trainer_state.json"))) await new Promise((r) => setTimeout(r, 10));
    child.kill("SIGKILL");
    assert.equal(await exit, "SIGKILL", "the run finished before it could be killed");
    assert.ok(!existsSync(join(killed, "policy")), "the killed run must not have finished");

    const resumed = ok([...run(killed), "--resume"]);
    assert.match(resumed.stderr, /resumed from .*checkpoint-\d+ \(step \d+ of \d+\)/);
    assert.doesNotMatch(resumed.stderr, /config changed/);

    const weights = async (d: string) => (await readSafetensors(join(d, "policy", file))).tensors;
    const [a, b] = [await weights(straight), await weights(killed)];
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    for (const [key, t] of a) assert.ok(bytes(t.data).equals(bytes(b.get(key)!.data)), `${key} differs after resume`);
    // The logs read like one clean run, value for value.
    assert.deepEqual(records(killed, "metrics.jsonl"), records(straight, "metrics.jsonl"));
    assert.deepEqual(records(killed, "samples.jsonl"), records(straight, "samples.jsonl"));
    if (!lora) return;
    assert.ok([...a.keys()].every((k) => /^base_model\.model\..*lora_[AB]\.weight$/.test(k)), "the policy saved is the adapter alone");
    // Step 1 samples from a fresh adapter (B = 0), exactly the base, which is the reference: no KL.
    assert.equal(records(straight, "metrics.jsonl")[0]!["objective/kl"], 0);
    const noDropout = join(dir, "no-dropout");
    ok(run(noDropout, ["--disable_dropout"]));
    const [withIt, without] = [await weights(straight), await weights(noDropout)];
    assert.ok([...withIt].some(([key, t]) => !bytes(t.data).equals(bytes(without.get(key)!.data))), "lora_dropout acts in GRPO (disable_dropout defaults to false)");
  });
}
