// `rlhf loop` with an AI judge over HTTP as its labeler: a fake OpenAI-compatible server that gives
// verdicts (the longer story wins; equal lengths get an answer without a verdict, which must be
// counted as failed, not guessed), and the real `rlhf serve` with stories260K, whose answers are
// stories without a verdict: every judged comparison fails, the loop still runs end to end on the
// rest of its comparisons (labeled by a reward module over the label budget).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RLHF_BIN } from "../cli/test-helpers.ts";
import { fakeOpenAiServer, reply, runRlhfAsync } from "../ai-feedback/test-helpers.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import type { LabeledComparison } from "./comparisons.ts";
import { roundPaths } from "./round.ts";
import { readJsonLines } from "./run-dir.ts";

const server = fakeOpenAiServer();
const MODEL = sharedData("llama2c/stories260K.bin");

async function loopConfig(labeler: string, extra: string[] = []): Promise<{ dir: string; config: string }> {
  const dir = await tempDir();
  const prompts = ["Once upon a time, there was a cat. It", "Lily went to the park. She", "Tom had a big red ball. He", "The sun was warm. The"];
  writeFileSync(join(dir, "prompts.jsonl"), prompts.map((prompt) => JSON.stringify({ prompt })).join("\n") + "\n");
  writeFileSync(join(dir, "longer.mjs"), "export function reward(_p, cs) { return cs.map((c) => c.length); }\n");
  const config = join(dir, "loop.yaml");
  writeFileSync(config, [
    `policy: ${MODEL}`, "prompts: prompts.jsonl", "eval_prompts: prompts.jsonl", "rounds: 1",
    "sampling: {k: 4, max_new_tokens: 10, batch_size: 4}", `labeler: ${labeler}`, ...extra,
    "reward_model: {held_out: 0.34, args: {max_steps: 2, per_device_train_batch_size: 2, max_length: 48}}",
    "dpo: {max_steps: 2, per_device_train_batch_size: 2, max_length: 48, eval_split_ratio: 0.2}",
    "eval: {num_samples: 1, max_new_tokens: 8, batch_size: 4}",
  ].join("\n") + "\n");
  return { dir, config };
}

const answers = (body: { messages: { content: string }[] }) => {
  const text = body.messages.at(-1)!.content;
  // The default template (pair-rlhf) shows the two answers between these markers.
  const a = /\[Response A\]\n([\s\S]*?)\n\[End of Response A\]/.exec(text)?.[1];
  const b = /\[Response B\]\n([\s\S]*?)\n\[End of Response B\]/.exec(text)?.[1];
  assert.ok(a !== undefined && b !== undefined, `the judge prompt lost its answers:\n${text}`);
  return [a, b] as const;
};

test("rlhf loop labels with a judge over HTTP: verdicts become labels, answers without one are counted as failed", { timeout: 240_000 }, async () => {
  server.reset((body, res) => {
    const [a, b] = answers(body);
    reply(res, a.length === b.length ? "Both are stories." : `Final verdict: [[${a.length > b.length ? "A" : "B"}]]`);
  });
  const { dir, config } = await loopConfig(`{type: judge, judge: "${server.baseUrl}", model: fake, args: {retries: 0, concurrency: 2}}`);
  const out = join(dir, "run");
  const r = await runRlhfAsync(["loop", "run", config, "--output", out], { OPENAI_API_KEY: "sk-test" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(server.requests.length, 2 * 8, "both orders of the 8 comparisons");
  const labels = readJsonLines<LabeledComparison>(roundPaths(out, 0).labels);
  for (const l of labels) assert.ok(l.tie || l.chosen.length > l.rejected.length, `the longer story wins: ${JSON.stringify(l)}`);
  const [round] = readFileSync(join(out, "rounds.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  assert.equal(round!.labels + round!.label_failures, 8);
  assert.equal(round!.labels, labels.length);
  assert.match(labels[0]!.labeler, /^judge:fake$/);
});

test("rlhf loop with rlhf serve (stories260K) as the judge runs end to end: failed verdicts counted, the rest labeled by the reward module", { timeout: 240_000 }, async () => {
  const serve = spawn(process.execPath, [RLHF_BIN, "serve", "--model", MODEL, "--chat-template", "default", "--port", "0"], { stdio: ["ignore", "ignore", "pipe"] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let err = "";
      serve.stderr.on("data", (d) => {
        err += d;
        const m = /serving (\S+) at (http:\S+)/.exec(err);
        if (m) resolve(`${m[2]!} ${m[1]!}`);
      });
      serve.on("exit", () => reject(new Error(`rlhf serve exited:\n${err}`)));
    });
    const [base, name] = url.split(" ");
    const { dir, config } = await loopConfig(`{type: judge, judge: "${base}", model: "${name}", args: {retries: 0, max-tokens: 24}}`, ["label_budget: 3", "rest: {type: reward, reward: longer.mjs}"]);
    const out = join(dir, "run");
    const r = await runRlhfAsync(["loop", "run", config, "--output", out]);
    assert.equal(r.status, 0, r.stderr);
    const labels = readJsonLines<LabeledComparison>(roundPaths(out, 0).labels);
    const [round] = readFileSync(join(out, "rounds.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    const judged = labels.filter((l) => l.labeler.startsWith("judge:"));
    assert.equal(labels.length - judged.length, 5, "the 5 comparisons over the budget go to the reward module");
    assert.equal(judged.length + round!.label_failures, 3, "each of the judge's 3 comparisons is a label or a counted failure");
    assert.match(r.stderr, /the judge labeled \d+ of 3 comparisons \(\d+ ties\), \d+ failed/);
  } finally {
    serve.kill("SIGTERM");
  }
});
