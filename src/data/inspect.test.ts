// `data inspect`'s measurements: statistics by hand, character and token lengths of converted
// HH-RLHF checked against the trainers' own rendering, SFT formats, and one-format-per-file errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { applyChatTemplate, type ChatMessage } from "../tokenizers/chat.ts";
import { loadLlama2cTokenizer } from "../tokenizers/llama2c.ts";
import { fitToLength } from "../train/reward.ts";
import { convertHhRlhf, writeJsonLines } from "./convert.ts";
import { renderPreference } from "./datasets.ts";
import { characterCounter, inspectFile, lengthStats } from "./inspect.ts";

const hh = convertHhRlhf(sharedData("hh-rlhf/helpful-base/test.jsonl.gz")).records;
type Pair = { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };

async function file(name: string, lines: object[]): Promise<string> {
  const path = join(await tempDir(), name);
  await writeJsonLines(path, lines as Record<string, unknown>[]);
  return path;
}

test("length statistics: min, mean, median (middle two averaged), nearest-rank p95, max", () => {
  assert.deepEqual(lengthStats(Array.from({ length: 20 }, (_, i) => 20 - i)), { min: 1, mean: 10.5, median: 10.5, p95: 19, max: 20 });
  assert.deepEqual(lengthStats([7, 1, 3]), { min: 1, mean: 11 / 3, median: 3, p95: 7, max: 7 });
});

test("converted helpful-base without a tokenizer: conversational preference, lengths in characters of the default template's text", async () => {
  const path = await file("hh.jsonl.gz", hh);
  const r = inspectFile(path, null);
  assert.equal(r.format_name, "preference (conversational, explicit prompt)");
  assert.deepEqual([r.records, r.examples, r.unit, r.chat_template], [2333, 2333, "characters", "default"]);
  assert.deepEqual(Object.keys(r.lengths), ["prompt", "chosen", "rejected", "total"]);
  const chars = (messages: ChatMessage[], generation = false) => [...applyChatTemplate(characterCounter, messages, { addGenerationPrompt: generation })].length;
  const totals = (hh as Pair[]).map((p) => Math.max(chars([...p.prompt, ...p.chosen]), chars([...p.prompt, ...p.rejected])));
  const prompts = (hh as Pair[]).map((p) => chars(p.prompt, true));
  assert.equal(r.lengths.total!.max, Math.max(...totals));
  assert.equal(r.lengths.total!.min, Math.min(...totals));
  assert.equal(r.lengths.prompt!.mean, prompts.reduce((a, b) => a + b) / prompts.length);
  assert.equal(r.fits["512"], totals.filter((t) => t <= 512).length);
  assert.equal(r.fits["4096"], 2333);
});

test("tokens with tok512: the same rows the reward trainer builds, and the same pairs fit max_length", async () => {
  const tok = await loadLlama2cTokenizer(sharedData("llama2c/tok512.bin"));
  const subset = hh.slice(0, 120);
  const r = inspectFile(await file("hh.jsonl", subset), tok);
  assert.equal(r.unit, "tokens");
  const examples = subset.map((record) => renderPreference(record, tok, "x"));
  const longest = examples.map((e) => Math.max(...e.responses.map((row) => row.length)));
  assert.equal(r.lengths.total!.max, Math.max(...longest));
  assert.equal(r.lengths.total!.median, lengthStats(longest).median);
  for (const maxLength of [128, 256, 512]) assert.equal(r.fits[String(maxLength)], fitToLength(examples, maxLength).kept.length, `max_length ${maxLength}`);
  // The prompt's tokens are BOS + the template's text up to "<|assistant|>\n"; chosen = the rest, EOS included.
  const first = subset[0] as Pair;
  const promptTokens = tok.encode(applyChatTemplate(tok, first.prompt, { addGenerationPrompt: true })).length;
  assert.ok(r.lengths.prompt!.min <= promptTokens && promptTokens <= r.lengths.prompt!.max);
});

test("an implicit prompt is the shared beginning; SFT formats count prompt and completion", async () => {
  const implicit = inspectFile(await file("implicit.jsonl", [{ chosen: "The sky is blue", rejected: "The sky is green" }]), null);
  assert.equal(implicit.format_name, "preference (standard, implicit prompt)");
  assert.deepEqual(Object.fromEntries(Object.entries(implicit.lengths).map(([k, s]) => [k, s.max])), { prompt: 11, chosen: 4, rejected: 5, total: 16 });

  const seeds = inspectFile(sharedData("self-instruct/seed_tasks.jsonl"), null);
  const instances = readFileSync(sharedData("self-instruct/seed_tasks.jsonl"), "utf8").trim().split("\n").reduce((n, l) => n + (JSON.parse(l) as { instances: unknown[] }).instances.length, 0);
  assert.equal(seeds.format_name, "self-instruct (instruction + instances)");
  assert.deepEqual([seeds.records, seeds.examples], [175, instances]);
  assert.deepEqual(Object.keys(seeds.lengths), ["prompt", "completion", "total"]);

  const text = inspectFile(await file("lm.jsonl", [{ text: "abc" }, { text: "hello" }]), null);
  assert.deepEqual(text.lengths, { total: { min: 3, mean: 4, median: 4, p95: 5, max: 5 } });
  const chat = inspectFile(await file("chat.jsonl", [{ messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello" }] }]), null);
  assert.deepEqual(Object.fromEntries(Object.entries(chat.lengths).map(([k, s]) => [k, s.max])), { prompt: "<|user|>\nHi\n<|assistant|>\n".length, completion: 5, total: "<|user|>\nHi\n<|assistant|>\nHello".length });
});

test("one format per file: the first record of another format, or of none, is named by line", async () => {
  const dir = await tempDir();
  const mixed = join(dir, "mixed.jsonl");
  writeFileSync(mixed, [{ prompt: "Q", chosen: "a", rejected: "b" }, { prompt: "Q", chosen: "c", rejected: "d" }, { chosen: "Qa", rejected: "Qb" }].map((l) => JSON.stringify(l)).join("\n"));
  assert.throws(() => inspectFile(mixed, null), new RegExp(`^InputError: ${mixed}:3: a preference \\(standard, implicit prompt\\) record, but ${mixed}:1 is preference \\(standard, explicit prompt\\); a file must hold one format$`));
  const unknown = join(dir, "unknown.jsonl");
  writeFileSync(unknown, ['{"text": "a"}', "", '{"question": "Q"}'].join("\n"));
  assert.throws(() => inspectFile(unknown, null), /unknown\.jsonl:3: no known dataset format \(fields: "question"\)/);
});
