// `rlhf eval` and `rlhf pairs` on the command line, with a tiny model and a JS reward module: the
// JSON report and its table, --samples, the preference file (the same for the same seed), and
// clear errors for bad input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { release } from "../engine/arrays.ts";
import { initEngine } from "../engine/runtime.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { saveModel } from "../models/load.ts";
import { loadTokenizer } from "../tokenizers/load.ts";
import { tinyModel } from "../train/test-helpers.ts";
import { runRlhf, runRlhfOk } from "./test-helpers.ts";


const setUp = (async () => {
  await initEngine();
  const dir = await tempDir();
  const tokenizer = await loadTokenizer(sharedData("llama2c/tok512.bin"));
  for (const [name, seed] of [["reference", 3], ["policy", 4]] as const) {
    const { config, params } = tinyModel(seed, { vocab_size: 512 });
    await saveModel(join(dir, name), config, params, { tokenizer });
    release(params);
  }
  const { config, params } = tinyModel(5, { vocab_size: 256 });
  await saveModel(join(dir, "small-vocab"), config, params);
  release(params);
  writeFileSync(join(dir, "reward.mjs"), "export function reward(prompts, completions) { return completions.map((c) => (c.match(/[aeiou]/g) ?? []).length / Math.max(1, c.length)); }\n");
  const prompts = [{ prompt: "Once upon a time" }, { prompt: "The dog" }, { prompt: [{ role: "user", content: "Tell a story." }] }, { prompt: "One day" }];
  writeFileSync(join(dir, "prompts.jsonl"), prompts.map((p) => JSON.stringify(p)).join("\n") + "\n");
  const common = ["--reward", join(dir, "reward.mjs"), "--prompts", join(dir, "prompts.jsonl"), "--max-new-tokens", "8"];
  return { dir, prompts, common };
})();

const rlhf = runRlhf;
const ok = runRlhfOk;

function refused(args: string[], message: RegExp) {
  const r = rlhf(args);
  assert.notEqual(r.status, 0, `rlhf ${args.join(" ")} should fail`);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "a bad input should not print a stack trace");
}

const lines = (path: string) => readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

test("rlhf eval --json: one object with reward, reference_reward, kl, length, win_rate; --samples has every completion", async () => {
  const { dir, prompts, common } = await setUp;
  const samples = join(dir, "samples.jsonl");
  const r = ok(["eval", "--policy", join(dir, "policy"), "--reference", join(dir, "reference"), ...common, "--num-samples", "2", "--batch-size", "3", "--samples", samples, "--json"]);
  const report = JSON.parse(r.stdout) as Record<string, number>;
  assert.equal(r.stdout.trim().split("\n").length, 1);
  for (const key of ["reward", "reference_reward", "kl", "length", "reference_length", "win_rate"]) assert.ok(Number.isFinite(report[key]), `${key} = ${report[key]}`);
  assert.deepEqual([report.num_prompts, report.num_samples], [4, 2]);
  const written = lines(samples);
  assert.equal(written.length, 8);
  // The prompt as given (chat messages too), and rewards whose mean is the report's.
  assert.deepEqual(written.filter((s) => s.sample === 0).map((s) => s.prompt), prompts.map((p) => p.prompt));
  const mean = (key: string) => written.reduce((a, s) => a + (s[key] as number), 0) / written.length;
  assert.ok(Math.abs(mean("reward") - report.reward!) < 1e-12 && Math.abs(mean("reference_reward") - report.reference_reward!) < 1e-12);
  assert.ok(Math.abs(mean("kl") - report.kl!) < 1e-9);
  assert.ok(written.every((s) => typeof s.completion === "string" && typeof s.reference_completion === "string"));

  // Against itself: the same samples, so KL 0 and a win rate of ½; the table says so.
  const self = ok(["eval", "--policy", join(dir, "reference"), "--reference", join(dir, "reference"), ...common]);
  assert.match(self.stdout, /\| policy\s+\|\s+(\d\.\d+) \|[^\n]*\n\| reference\s+\|\s+\1 \|/);
  assert.match(self.stdout, /KL\(policy ‖ reference\): 0\.000 nats/);
  assert.match(self.stdout, /win rate of the policy over the reference: 0\.500/);
});

test("rlhf eval --lm-data: a .txt file's documents score as the same {\"text\"} records; alone it samples nothing; with prompts it joins the report", async () => {
  const { dir, common } = await setUp;
  const stories = ["Once upon a time there was a dog.", "The cat sat on the mat. It was happy."];
  writeFileSync(join(dir, "lm.txt"), stories.join("\n<|endoftext|>\n") + "\n");
  writeFileSync(join(dir, "lm.jsonl"), stories.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  const models = ["--policy", join(dir, "policy"), "--reference", join(dir, "reference")];
  const fromText = JSON.parse(ok(["eval", ...models, "--lm-data", join(dir, "lm.txt"), "--json"]).stdout);
  const fromJsonl = JSON.parse(ok(["eval", ...models, "--lm-data", join(dir, "lm.jsonl"), "--json"]).stdout);
  assert.deepEqual(Object.keys(fromText).sort(), ["lm_loss", "lm_tokens", "reference_lm_loss"]);
  assert.deepEqual(fromText, fromJsonl);
  assert.ok(fromText.lm_tokens > 20 && fromText.lm_loss > 0 && fromText.lm_loss !== fromText.reference_lm_loss);
  const same = JSON.parse(ok(["eval", "--policy", join(dir, "reference"), "--reference", join(dir, "reference"), "--lm-data", join(dir, "lm.txt"), "--json"]).stdout);
  assert.equal(same.lm_loss, same.reference_lm_loss);
  assert.equal(same.reference_lm_loss, fromText.reference_lm_loss);
  const full = JSON.parse(ok(["eval", ...models, ...common, "--lm-data", join(dir, "lm.txt"), "--json"]).stdout);
  assert.equal(full.lm_loss, fromText.lm_loss);
  assert.ok(Number.isFinite(full.reward));
  assert.match(ok(["eval", ...models, "--lm-data", join(dir, "lm.txt")]).stdout, /^LM loss on .*lm\.txt \(\d+ tokens\): policy \d\.\d{4}, reference \d\.\d{4} nats\/token \(alignment tax -?\d\.\d{4}\)$/m);
});

test("rlhf eval and rlhf pairs --rollout_engine llama.cpp: sampled by llama.cpp, seeded, scored as always", async () => {
  const { dir, common } = await setUp;
  const llama = ["--rollout_engine", "llama.cpp"];
  const models = ["--policy", join(dir, "policy"), "--reference", join(dir, "reference")];
  const samples = join(dir, "llama-samples.jsonl");
  const report = JSON.parse(ok(["eval", ...models, ...common, ...llama, "--samples", samples, "--json"]).stdout) as Record<string, number>;
  for (const key of ["reward", "reference_reward", "kl", "win_rate"]) assert.ok(Number.isFinite(report[key]), `${key} = ${report[key]}`);
  const builtIn = JSON.parse(ok(["eval", ...models, ...common, "--json"]).stdout) as Record<string, number>;
  assert.notDeepEqual(report, builtIn, "llama.cpp draws its own samples");
  assert.ok(lines(samples).every((s) => typeof s.completion === "string" && (s.completion as string).length > 0));
  // The same engine and seed for both models of one: the same samples, so KL 0 and a win rate of ½.
  const self = JSON.parse(ok(["eval", "--policy", join(dir, "reference"), "--reference", join(dir, "reference"), ...common, ...llama, "--json"]).stdout) as Record<string, number>;
  assert.deepEqual([self.kl, self.win_rate, self.reward], [0, 0.5, self.reference_reward]);

  const pairs = (name: string) => ["pairs", "--policy", join(dir, "policy"), ...common, ...llama, "--k", "4", "--output", join(dir, "pairs", name)];
  ok(pairs("llama-a.jsonl"));
  ok(pairs("llama-b.jsonl"));
  const a = readFileSync(join(dir, "pairs", "llama-a.jsonl"), "utf8");
  assert.equal(readFileSync(join(dir, "pairs", "llama-b.jsonl"), "utf8"), a, "the same seed must give the same file on llama.cpp too");
  assert.ok(lines(join(dir, "pairs", "llama-a.jsonl")).every((r) => (r.score_chosen as number) > (r.score_rejected as number)));
  refused([...pairs("x.jsonl"), "--rollout_engine", "vllm"], /--rollout_engine: expected one of jax-js, llama\.cpp, got "vllm"/);
});

test("rlhf eval refuses bad input with a clear message", async () => {
  const { dir, common } = await setUp;
  const policy = ["--policy", join(dir, "policy")];
  const reference = ["--reference", join(dir, "reference")];
  assert.equal(ok(["eval", "--help"]).stdout.includes("win_rate"), true);
  refused(["eval", ...policy, ...common], /--reference is required/);
  refused(["eval", ...policy, "--reference", join(dir, "missing"), ...common], /checkpoint not found: .*missing/);
  refused(["eval", ...policy, "--reference", join(dir, "small-vocab"), ...common], /vocabulary \(512 tokens\) differs from the reference's \(256\)/);
  refused(["eval", ...policy, ...reference, ...common, "--num-samples", "0"], /--num-samples must be at least 1/);
  refused(["eval", ...policy, ...reference, ...common, "--temperature", "hot"], /--temperature must be a number/);
  refused(["eval", ...policy, ...reference, ...common, "--max-new-tokens", "64"], /--max-new-tokens 64 leaves no room for a prompt/);
  refused(["eval", ...policy, ...reference, ...common, "--reward", join(dir, "policy")], /is not a reward model/);
  refused(["eval", ...policy, ...reference, ...common.map((a) => (a.endsWith("prompts.jsonl") ? join(dir, "none.jsonl") : a))], /prompt file not found/);
});

test("rlhf pairs writes preference (or ranking) records, the same file for the same seed", async () => {
  const { dir, prompts, common } = await setUp;
  const args = (output: string, extra: string[] = []) => ["pairs", "--policy", join(dir, "policy"), ...common, "--k", "4", "--batch-size", "3", "--output", output, ...extra];
  const first = ok(args(join(dir, "pairs", "a.jsonl")));
  assert.match(first.stderr, /wrote \d preference records to .*a\.jsonl; skipped \d prompts? whose 4 completions all scored the same/);
  ok(args(join(dir, "pairs", "b.jsonl")));
  const a = readFileSync(join(dir, "pairs", "a.jsonl"), "utf8");
  assert.equal(readFileSync(join(dir, "pairs", "b.jsonl"), "utf8"), a, "the same seed must give the same file");
  const records = lines(join(dir, "pairs", "a.jsonl"));
  assert.ok(records.length > 0);
  for (const r of records) {
    const marks = ["chosen_truncated", "rejected_truncated"];
    assert.deepEqual(Object.keys(r).filter((k) => !marks.includes(k)).sort(), ["chosen", "prompt", "rejected", "score_chosen", "score_rejected"]);
    for (const mark of marks) assert.ok(!(mark in r) || r[mark] === true, `${mark} is written only when true`);
    assert.ok((r.score_chosen as number) > (r.score_rejected as number));
    const given = prompts.find((p) => JSON.stringify(p.prompt) === JSON.stringify(r.prompt));
    assert.ok(given, `unknown prompt ${JSON.stringify(r.prompt)}`);
    assert.equal(typeof r.chosen === "string", typeof given.prompt === "string", "chat prompts give assistant messages");
  }
  ok(args(join(dir, "pairs", "c.jsonl"), ["--seed", "7"]));
  assert.notEqual(readFileSync(join(dir, "pairs", "c.jsonl"), "utf8"), a);

  ok(args(join(dir, "pairs", "rank.jsonl"), ["--format", "ranking"]));
  for (const r of lines(join(dir, "pairs", "rank.jsonl"))) {
    assert.equal((r.responses as unknown[]).length, 4);
    assert.deepEqual([...(r.ranking as number[])].sort(), [0, 1, 2, 3]);
  }

  assert.match(ok(["pairs", "--help"]).stdout, /--k K\s+completions per prompt/);
  refused(args(join(dir, "x.jsonl"), ["--k", "1"]), /--k must be at least 2/);
  refused(args(join(dir, "x.jsonl"), ["--format", "pairs"]), /--format must be one of preference, ranking/);
  refused(["pairs", "--policy", join(dir, "policy"), ...common], /--output is required/);
  refused(args(join(dir, "x.jsonl"), ["--top-p", "2"]), /--top-p must be at most 1/);
});
