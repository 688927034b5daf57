// --skip-invalid on the command line: `rlhf sft` and `rlhf rm train|eval|score` stop at the first
// malformed record by default (naming file:line and field), and with the flag skip and count them;
// `rm score` keeps one output line per input record. Conversational pairs go through the chat template.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { initEngine } from "../engine/runtime.ts";
import { tempDir } from "../io/test-helpers.ts";
import { tinyModelDir } from "./test-helpers.ts";
import { runRlhf } from "../cli/test-helpers.ts";

const rlhf = (...args: string[]) => runRlhf(args);

async function setUp() {
  await initEngine();
  const dir = await tempDir();
  const model = await tinyModelDir(dir);
  const words = ["cat", "dog", "sun", "tree"];
  const good = words.flatMap((w) => [
    { prompt: `The ${w} is`, chosen: " happy.", rejected: " sad!" },
    { prompt: [{ role: "user", content: `The ${w}?` }], chosen: [{ role: "assistant", content: "Happy." }], rejected: [{ role: "assistant", content: "Sad!" }] },
  ]).map((r) => JSON.stringify(r));
  const prefs = join(dir, "prefs.jsonl");
  // Lines 3, 6 and 9 are broken: a number for "chosen", not JSON, a message without "role".
  good.splice(2, 0, JSON.stringify({ prompt: "Q", chosen: 3, rejected: "b" }));
  good.splice(5, 0, "{not json");
  good.splice(8, 0, JSON.stringify({ prompt: [{ role: "user", content: "Q" }], chosen: [{ content: "x" }], rejected: [{ role: "assistant", content: "y" }] }));
  writeFileSync(prefs, good.join("\n") + "\n");
  const sft = join(dir, "sft.jsonl");
  writeFileSync(sft, [{ prompt: "Say cat:", completion: " cat." }, { prompt: "Say dog:", completion: 7 }, { messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello." }] }, { text: "The sun." }].map((r) => JSON.stringify(r)).join("\n") + "\n");
  return { dir, model, prefs, sft };
}

test("rm train|eval|score and sft: stop at the first bad record by default, skip and count with --skip-invalid", async () => {
  const { dir, model, prefs, sft } = await setUp();
  const out = join(dir, "rm");
  const train = ["rm", "train", "--model", model, "--data", prefs, "--output", out, "--max_length", "64", "--max_steps", "2", "--per_device_train_batch_size", "2", "--eval_split_ratio", "0.25"];
  const strict = rlhf(...train);
  assert.equal(strict.status, 1);
  assert.match(strict.stderr, /prefs\.jsonl:3: "chosen" must be a string or a list of \{role, content\} messages, got a number \(3\)\n$/);

  const trained = rlhf(...train, "--skip-invalid");
  assert.equal(trained.status, 0, trained.stderr);
  assert.match(trained.stderr, /rm: skipped 3 invalid records \(first: .*prefs\.jsonl:3: "chosen" must be/);
  assert.match(trained.stderr, /rm: 6 training records, 2 held out/);

  const evaluated = rlhf("rm", "eval", "--model", out, "--data", prefs, "--json", "--skip-invalid");
  assert.equal(evaluated.status, 0, evaluated.stderr);
  assert.equal((JSON.parse(evaluated.stdout) as { n: number }).n, 8);

  const scored = rlhf("rm", "score", "--model", out, "--data", prefs, "--skip-invalid");
  assert.equal(scored.status, 0, scored.stderr);
  const lines = scored.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 11);
  assert.deepEqual(lines.flatMap((l, i) => ("invalid" in l ? [i + 1] : [])), [3, 6, 9]);
  assert.match(lines[8]!.invalid as string, /prefs\.jsonl:9: "chosen\[0\]" has no "role"/);
  assert.ok(lines.filter((l) => !("invalid" in l)).every((l) => Number.isFinite(l.chosen_score) && Number.isFinite(l.rejected_score)));
  assert.match(scored.stderr, /rm score: skipped 3 invalid records \(first: .*prefs\.jsonl:3: /);

  const sftArgs = ["sft", "--model", model, "--data", sft, "--output", join(dir, "sft"), "--max_length", "32", "--max_steps", "1", "--per_device_train_batch_size", "2", "--eval_split_ratio", "0"];
  const sftStrict = rlhf(...sftArgs);
  assert.equal(sftStrict.status, 1);
  assert.match(sftStrict.stderr, /sft\.jsonl:2: "completion" must be a string or a list of \{role, content\} messages, got a number \(7\)\n$/);
  const tuned = rlhf(...sftArgs, "--skip-invalid");
  assert.equal(tuned.status, 0, tuned.stderr);
  assert.match(tuned.stderr, /sft: skipped 1 invalid record \(first: .*sft\.jsonl:2: "completion" must be a string or a list of \{role, content\} messages, got a number \(7\)\)/);
  assert.match(tuned.stderr, /sft: 3 training examples/);
});
