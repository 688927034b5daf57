// The trainers' readers: errors that name file:line and field, --skip-invalid's count and summary,
// and conversational preference records (HH-RLHF converted) rendered through the chat template.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { convertHhRlhf } from "./convert.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { applyChatTemplate, type ChatMessage } from "../tokenizers/chat.ts";
import { loadLlama2cTokenizer } from "../tokenizers/llama2c.ts";
import { readPreferenceData, readRecords, readSftData, renderPreference, splitHeldOut } from "./datasets.ts";
import { readDpoData } from "./dpo-data.ts";
import { readKtoData } from "./kto-data.ts";

const tok = await loadLlama2cTokenizer(sharedData("llama2c/tok512.bin"));

async function file(name: string, lines: (string | object)[]): Promise<string> {
  const path = join(await tempDir(), name);
  writeFileSync(path, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n");
  return path;
}

const pair = { prompt: "Q: ", chosen: "yes", rejected: "no" };

test("the first malformed record stops the read, named by file:line and field", async () => {
  const cases: [(string | object)[], RegExp][] = [
    [[pair, { prompt: "Q", chosen: 3, rejected: "b" }], /bad\.jsonl:2: "chosen" must be a string or a list of \{role, content\} messages, got a number \(3\)$/],
    [[pair, "", "{\"chosen\": oops}"], /bad\.jsonl:3: not valid JSON \(/],
    [[{ prompt: "Q", responses: ["a", "b"], ranking: [1, 1] }], /bad\.jsonl:1: "ranking\[1\]" repeats index 1/],
    [[{ prompt: [{ role: "user", content: "Hi" }], chosen: [{ content: "x" }], rejected: [{ role: "assistant", content: "y" }] }], /bad\.jsonl:1: "chosen\[0\]" has no "role"/],
    [[{ prompt: "Q", completion: "A" }], /bad\.jsonl:1: a prompt-completion \(standard\) record; expected a preference \("chosen"\+"rejected"\) or a ranking/],
    [[{ prompt: "Q", responses: ["a", "b", "c"], ranking: [0, 1, 2], ties: [[0, 2]] }], /bad\.jsonl:1: "ties": 0 and 2 are tied but not neighbours in the order/],
  ];
  assert.throws(() => readPreferenceData("/nonexistent/prefs.jsonl", tok), /data file not found: \/nonexistent\/prefs\.jsonl$/);
  for (const [lines, pattern] of cases) {
    const path = await file("bad.jsonl", lines);
    assert.throws(() => readPreferenceData(path, tok), (err: Error) => err.name === "InputError" && pattern.test(err.message) && err.message.startsWith(path));
  }
  const sft = await file("sft.jsonl", [{ messages: [{ role: "user", content: "Hi" }, { role: "user", content: "again" }] }]);
  assert.throws(() => readSftData(sft, tok), /sft\.jsonl:1: "messages\[1\]\.role" is "user"; the last message must be the assistant's/);
  const pref = await file("pref.jsonl", [pair]);
  assert.throws(() => readSftData(pref, tok), /pref\.jsonl:1: a preference \(standard, explicit prompt\) record; SFT needs/);
  const empty = await file("empty.jsonl", [""]);
  assert.throws(() => readPreferenceData(empty, tok), /empty\.jsonl: no records \(the file is empty\)$/);
  const list = join(await tempDir(), "broken.json");
  writeFileSync(list, "[{\"chosen\": 1,");
  assert.throws(() => readRecords(list), /broken\.json: not valid JSON/);
});

test("skipInvalid: malformed records skipped and counted, one summary line naming the first", async () => {
  const path = await file("mixed.jsonl", [pair, "{oops", { prompt: "Q", chosen: 3, rejected: "b" }, pair, { chosen: "x" }]);
  const warnings: string[] = [];
  const examples = readPreferenceData(path, tok, { skipInvalid: true, warn: (m) => warnings.push(m) });
  assert.equal(examples.length, 2);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, new RegExp(`^skipped 3 invalid records \\(first: ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2: not valid JSON \\(.*\\)\\)$`));
  const allBad = await file("bad.jsonl", ["{oops", { text: 1 }]);
  assert.throws(() => readSftData(allBad, tok, { skipInvalid: true, warn: () => {} }), /bad\.jsonl: no valid records \(skipped 2 invalid records \(first: .*bad\.jsonl:1: not valid JSON/);
  // Without the option the same file stops at line 2.
  assert.throws(() => readPreferenceData(path, tok), /mixed\.jsonl:2: not valid JSON/);
});

test("converted HH-RLHF records render through the chat template (the default one for tok512), EOS last", async () => {
  const { records } = convertHhRlhf(sharedData("hh-rlhf/helpful-base/test.jsonl.gz"));
  for (const record of records.slice(0, 20)) {
    const { prompt, chosen, rejected } = record as { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };
    const example = renderPreference(record, tok, "hh:1");
    assert.deepEqual(example.pairs, [{ chosen: 0, rejected: 1 }]);
    assert.deepEqual(example.responses[0], [...tok.encode(applyChatTemplate(tok, [...prompt, ...chosen])), tok.eosTokenId]);
    assert.deepEqual(example.responses[1], [...tok.encode(applyChatTemplate(tok, [...prompt, ...rejected])), tok.eosTokenId]);
    assert.ok(tok.decode(example.responses[0]!, { skipSpecialTokens: true }).startsWith(`<|user|>\n${prompt[0]!.content}\n`));
    assert.ok(tok.decode(example.responses[0]!, { skipSpecialTokens: true }).endsWith(`<|assistant|>\n${chosen[0]!.content}\n`));
  }
});

test("splitHeldOut: the same seed holds out the same records", () => {
  const records = Array.from({ length: 50 }, (_, i) => i);
  const a = splitHeldOut(records, 0.1, 3);
  assert.equal(a.eval.length, 5);
  assert.deepEqual(splitHeldOut(records, 0.1, 3), a);
  assert.deepEqual([...a.train, ...a.eval].sort((x, y) => x - y), records);
});

test("tie records (rlhf judge's \"tie\": true) are skipped by the reward-model, DPO and KTO readers, with a count", async () => {
  const tie = { ...pair, chosen: "maybe", tie: true, judge: "j", confidence: 0.5 };
  const path = await file("judged.jsonl", [pair, tie, { ...pair, tie: false }]);
  const warnings: string[] = [];
  assert.equal(readPreferenceData(path, tok, { warn: (m) => warnings.push(m) }).length, 2);
  assert.deepEqual(warnings, ['skipped 1 tie record ("tie": true)']);
  assert.equal(readDpoData(path, tok).length, 2);
  assert.equal(readKtoData(path, tok).length, 2);
  const onlyTies = await file("ties.jsonl", [tie]);
  assert.throws(() => readPreferenceData(onlyTies, tok), /ties\.jsonl: every record is a tie \("tie": true\); there is no preference to learn/);
});
