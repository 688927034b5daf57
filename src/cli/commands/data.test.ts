// `rlhf data convert` and `rlhf data inspect` as a user runs them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { sharedData, tempDir } from "../../io/test-helpers.ts";
import { runRlhf } from "../test-helpers.ts";

const rlhf = (...args: string[]) => runRlhf(["data", ...args]);

test("convert helpful-base to a .gz file, then inspect it", async () => {
  const dir = await tempDir();
  const out = join(dir, "helpful-base.jsonl.gz");
  const converted = rlhf("convert", "--from", "hh-rlhf", sharedData("hh-rlhf/helpful-base/test.jsonl.gz"), out, "--json");
  assert.equal(converted.status, 0, converted.stderr);
  const summary = JSON.parse(converted.stdout) as { read: number; written: number; dropped: { reason: string; count: number }[] };
  assert.deepEqual([summary.read, summary.written, summary.dropped.reduce((n, d) => n + d.count, 0)], [2354, 2333, 21]);
  assert.deepEqual(readdirSync(dir), ["helpful-base.jsonl.gz"]); // no temp file left behind

  const inspected = rlhf("inspect", out);
  assert.equal(inspected.status, 0, inspected.stderr);
  assert.match(inspected.stdout, /format {4}preference \(conversational, explicit prompt\)\nrecords {3}2333\n/);
  assert.match(inspected.stdout, /lengths in characters \(no tokenizer: pass --tokenizer or --model for tokens\)/);
  assert.match(inspected.stdout, /\ntotal +\d+/);
});

test("usage errors and bad input: a message naming the problem, no stack, no output file", async () => {
  const dir = await tempDir();
  const out = join(dir, "out.jsonl");
  const unknown = rlhf("convert", "--from", "reddit", "in.jsonl", out);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /--from must be hh-rlhf or rt-polarity, got "reddit"/);
  const missing = rlhf("inspect", join(dir, "nope.jsonl"));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^rlhf data: data file not found: .*nope\.jsonl\n$/);
  const both = rlhf("inspect", "x.jsonl", "--tokenizer", "a", "--model", "b");
  assert.match(both.stderr, /pass --tokenizer or --model, not both/);
  assert.equal(existsSync(out), false);
});
