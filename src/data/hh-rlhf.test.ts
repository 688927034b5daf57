// HH-RLHF → TRL conversion on the real helpful-base test split: counts by drop reason, a known
// record, agreement with TRL's own algorithm on every kept record, and a lossless round trip back
// to the transcripts; plus rt-polarity and the output file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { applyChatTemplate, DEFAULT_CHAT_TEMPLATE, type ChatMessage } from "../tokenizers/chat.ts";
import { readRecordLines } from "./datasets.ts";
import { convertHhRlhf, convertRtPolarity, writeJsonLines } from "./convert.ts";
import { parseTranscript, splitHhRecord } from "./hh-rlhf.ts";
import { characterCounter } from "./inspect.ts";
import { decodeUtf8OrLatin1 } from "./rt-polarity.ts";

const helpfulBase = sharedData("hh-rlhf/helpful-base/test.jsonl.gz");
const converted = convertHhRlhf(helpfulBase);

type Pair = { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };

/**
 * What TRL's examples/datasets/hh-rlhf-helpful-base.py computes, restated: the strings' common
 * prefix, cut back to end at its last "\n\nAssistant: "; what follows is each reply; the prefix
 * without that marker, split at the markers, is the prompt.
 */
function trlReference(chosen: string, rejected: string): Pair {
  const marker = "\n\nAssistant: ";
  let n = 0;
  while (n < chosen.length && n < rejected.length && chosen[n] === rejected[n]) n++;
  let prefix = chosen.slice(0, n);
  if (!prefix.endsWith(marker)) prefix = prefix.slice(0, prefix.lastIndexOf(marker)) + marker;
  const parts = prefix.slice(0, -marker.length).split(/(\n\nAssistant: |\n\nHuman: )/).slice(1);
  const prompt: ChatMessage[] = [];
  for (let i = 0; i < parts.length; i += 2) prompt.push({ role: parts[i] === "\n\nHuman: " ? "user" : "assistant", content: parts[i + 1]! });
  return { prompt, chosen: [{ role: "assistant", content: chosen.slice(prefix.length) }], rejected: [{ role: "assistant", content: rejected.slice(prefix.length) }] };
}

test("helpful-base: 2,354 records in, 2,333 out, the 21 dropped counted by reason with the first line of each", () => {
  assert.equal(converted.read, 2354);
  assert.equal(converted.records.length, 2333);
  const byReason = Object.fromEntries(converted.dropped.map((d) => [d.reason, d.count]));
  assert.deepEqual(byReason, { "empty-reply": 4, "diverges-early": 9, "roles-not-alternating": 6, identical: 2 });
  const first = Object.fromEntries(converted.dropped.map((d) => [d.reason, d.first]));
  assert.match(first["empty-reply"]!, /test\.jsonl\.gz:121: the rejected reply is empty$/);
  // Line 169's rejected reply goes on with "\n\nHumans: …\n\nAssistant: …": a fake second turn.
  assert.match(first["diverges-early"]!, /:169: they share 1 turn, then chosen has 1 and rejected 2/);
  // Line 356: an assistant turn with " Human:  Thanks." inside it, then a second assistant turn.
  assert.match(first["roles-not-alternating"]!, /:356: turn 3 is the assistant's, expected the user's/);
  assert.match(first.identical!, /:722: /);
});

test("a known record: line 2's five shared turns become the prompt, the last replies chosen and rejected", () => {
  const record = converted.records[1] as Pair;
  assert.deepEqual(record.prompt.map((m) => m.role), ["user", "assistant", "user", "assistant", "user"]);
  assert.equal(record.prompt[0]!.content, "How can I find out what types of butterflies are in my area?");
  assert.equal(record.prompt[2]!.content, "I am in Oregon.");
  assert.equal(record.prompt[4]!.content, "Great. What are some common species then?");
  assert.equal(record.chosen.length, 1);
  assert.match(record.chosen[0]!.content, /^About 150 species of butterflies live in Oregon.*red admirals\.$/);
  assert.match(record.rejected[0]!.content, /^Are you interested in just the common butterflies\?.*because you have children\?$/);
  assert.deepEqual(Object.keys(record), ["prompt", "chosen", "rejected"]);
});

test("every kept record is exactly what TRL's helpful-base script makes of it", () => {
  const source = readRecordLines(helpfulBase);
  let k = 0;
  for (const line of source) {
    if (!("record" in line)) assert.fail(`${line.where} is not JSON`);
    const { chosen, rejected } = line.record as { chosen: string; rejected: string };
    if ("drop" in splitHhRecord(line.record)) continue;
    assert.deepEqual(converted.records[k++], trlReference(chosen, rejected), line.where);
  }
  assert.equal(k, converted.records.length);
});

test("rendering is lossless: the HH template gives back both transcripts, the default template splits at the prompt", () => {
  const hh = "{% for m in messages %}{{ '\\n\\nHuman: ' if m.role == 'user' else '\\n\\nAssistant: ' }}{{ m.content }}{% endfor %}";
  const kept = readRecordLines(helpfulBase).flatMap((l) => ("record" in l && !("drop" in splitHhRecord(l.record)) ? [l] : []));
  kept.forEach((line, i) => {
    const original = line.record as { chosen: string; rejected: string };
    const r = converted.records[i] as Pair;
    assert.equal(applyChatTemplate(characterCounter, [...r.prompt, ...r.chosen], { template: hh }), original.chosen, line.where);
    assert.equal(applyChatTemplate(characterCounter, [...r.prompt, ...r.rejected], { template: hh }), original.rejected, line.where);
    // What a trainer renders for the prompt alone is where the chosen conversation's text starts.
    const prompt = applyChatTemplate(characterCounter, r.prompt, { addGenerationPrompt: true, template: DEFAULT_CHAT_TEMPLATE });
    assert.ok(applyChatTemplate(characterCounter, [...r.prompt, ...r.chosen], { template: DEFAULT_CHAT_TEMPLATE }).startsWith(prompt), line.where);
  });
});

test("the quirks by name: identical, diverging early, empty reply, roles out of turn, malformed", () => {
  const t = (...turns: [string, string][]) => turns.map(([who, text]) => `\n\n${who}: ${text}`).join("");
  const reason = (chosen: unknown, rejected: unknown) => {
    const r = splitHhRecord({ chosen, rejected });
    return "drop" in r ? `${r.drop}: ${r.detail}` : "kept";
  };
  const hi = t(["Human", "Hi"], ["Assistant", "Hello!"]);
  assert.equal(reason(hi, t(["Human", "Hi"], ["Assistant", "Go away."])), "kept");
  assert.match(reason(hi, hi), /^identical/);
  assert.match(reason(hi, t(["Human", "Hi"], ["Assistant", "Hm."], ["Human", "?"], ["Assistant", "No."])), /^diverges-early: they share 1 turn, then chosen has 1 and rejected 3/);
  assert.match(reason(hi, t(["Human", "Hey"], ["Assistant", "Hello!"])), /^diverges-early: they share 0 turns/);
  assert.match(reason(hi, t(["Human", "Hi"], ["Assistant", "  "])), /^empty-reply: the rejected reply is empty/);
  assert.match(reason(t(["Human", "a"], ["Human", "b"], ["Assistant", "x"]), t(["Human", "a"], ["Human", "b"], ["Assistant", "y"])), /^roles-not-alternating: turn 2 is the user's/);
  assert.match(reason(t(["Assistant", "x"]), t(["Assistant", "y"])), /^roles-not-alternating: turn 1 is the assistant's/);
  assert.match(reason("Human: Hi\n\nAssistant: x", hi), /^malformed: "chosen" does not start with "\\n\\nHuman: "/);
  assert.match(reason(hi, 3), /^malformed: "rejected" must be a transcript string, got a number \(3\)/);
  assert.match(reason(t(["Human", "Hi"], ["Assistant", "x"], ["Human", "y"]), t(["Human", "Hi"], ["Assistant", "x"], ["Human", "z"])), /^malformed: the turns that differ are not both the assistant's/);
  assert.deepEqual(parseTranscript(t(["Human", "Hi"], ["Assistant", ""])), [{ role: "user", content: "Hi" }, { role: "assistant", content: "" }]);
});

test("a file with broken lines: each counted as malformed with its line; the output is gzipped JSON lines, written whole", async () => {
  const dir = await tempDir();
  const input = join(dir, "hh.jsonl");
  const good = { chosen: "\n\nHuman: Hi\n\nAssistant: Hello!", rejected: "\n\nHuman: Hi\n\nAssistant: Go away." };
  writeFileSync(input, [JSON.stringify(good), "{not json", "[1, 2]", JSON.stringify({ chosen: "x" }), "", JSON.stringify(good)].join("\n"));
  const c = convertHhRlhf(input);
  assert.equal(c.read, 5);
  assert.equal(c.records.length, 2);
  assert.deepEqual(c.dropped.map((d) => [d.reason, d.count]), [["malformed", 3]]);
  assert.match(c.dropped[0]!.first, /hh\.jsonl:2: not valid JSON/);
  const out = join(dir, "out.jsonl.gz");
  await writeJsonLines(out, c.records);
  assert.deepEqual(readRecordLines(out).map((l) => ("record" in l ? l.record : l.invalid)), c.records);
});

test("rt-polarity: 4,331 pairs, line i positive over line i negative, UTF-8 read as UTF-8 (Latin-1 only as a fallback)", () => {
  const c = convertRtPolarity(sharedData("rt-polarity"));
  assert.equal(c.records.length, 4331);
  assert.deepEqual(c.dropped, []);
  assert.deepEqual(Object.keys(c.records[0]!), ["chosen", "rejected"]);
  assert.match(c.records[0]!.chosen as string, /^the rock is destined to be the 21st century's new " conan "/);
  assert.match(c.records[0]!.rejected as string, /^simplistic , silly and tedious \.$/);
  assert.match(c.records[75]!.chosen as string, /the clichés disappear/);
  assert.equal(decodeUtf8OrLatin1(Buffer.from([0x63, 0x6c, 0x69, 0x63, 0x68, 0xe9, 0x73])), "clichés");
  assert.equal(decodeUtf8OrLatin1(Buffer.from("clichés", "utf8")), "clichés");
});
