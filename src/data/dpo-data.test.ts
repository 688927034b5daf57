// DPO's data: the prompt split from the completions in every TRL format, errors that name
// file:line and the field, and pairs cut to fit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../io/test-helpers.ts";
import { fitDpoExample, readDpoData, renderDpo, type DpoExample } from "./dpo-data.ts";
import { chars } from "./test-helpers.ts";

const text = (ids: number[]) => chars.decode(ids);
const split = (e: DpoExample) => [text(e.prompt), text(e.chosen), text(e.rejected), e.chosen.at(-1), e.prompt[0]];

test("the prompt is split from the completions: explicit, implicit text, chat (explicit and implicit), rt-polarity", async () => {
  assert.deepEqual(split(renderDpo({ prompt: "Q: sky?", chosen: " blue", rejected: " green" }, chars, "f:1")), ["Q: sky?", " blue", " green", 2, 1]);
  // Implicit prompt: the longest common prefix, moved back before its final space (TRL's rule).
  assert.deepEqual(split(renderDpo({ chosen: "The sky is blue.", rejected: "The sky is grey." }, chars, "f:2")), ["The sky is", " blue.", " grey.", 2, 1]);
  assert.deepEqual(split(renderDpo({ chosen: "ab", rejected: "abc" }, chars, "f:3")), ["ab", "", "c", 2, 1]);

  const user = { role: "user", content: "Hi" };
  const explicit = renderDpo({ prompt: [user], chosen: [{ role: "assistant", content: "Hello!" }], rejected: [{ role: "assistant", content: "Go away." }] }, chars, "f:4");
  assert.deepEqual(split(explicit), ["<|user|>\nHi\n<|assistant|>\n", "Hello!\n", "Go away.\n", 2, 1]);
  const implicit = renderDpo({ chosen: [user, { role: "assistant", content: "Hello!" }], rejected: [user, { role: "assistant", content: "Go away." }] }, chars, "f:5");
  assert.deepEqual(implicit, explicit);

  const dir = await tempDir();
  writeFileSync(join(dir, "rt-polarity.pos"), "a fine film\nwarm and funny\n");
  writeFileSync(join(dir, "rt-polarity.neg"), "a dull film\nflat\nextra line\n");
  assert.deepEqual(readDpoData(dir, chars).map(split), [["", "a fine film", "a dull film", 2, 1], ["", "warm and funny", "flat", 2, 1]]);
});

test("a completion marked as cut off (chosen_truncated, rejected_truncated) gets no EOS; the other keeps it", () => {
  const both = renderDpo({ prompt: "Q:", chosen: " yes", rejected: " no", chosen_truncated: false, rejected_truncated: true }, chars, "f:1");
  assert.deepEqual([both.chosen.at(-1), text(both.rejected)], [2, " no"]);
  assert.equal(both.rejected.includes(2), false);
  const chat = renderDpo({ prompt: [{ role: "user", content: "Hi" }], chosen: [{ role: "assistant", content: "Hello" }], rejected: [{ role: "assistant", content: "Go" }], chosen_truncated: true }, chars, "f:2");
  assert.deepEqual([chat.chosen.includes(2), chat.rejected.at(-1)], [false, 2]);
  assert.throws(() => renderDpo({ prompt: "Q:", chosen: "a", rejected: "b", chosen_truncated: "yes" }, chars, "f:3"), /f:3: "chosen_truncated" must be true or false/);
});

test("bad records name the file:line and the field", async () => {
  const dir = await tempDir();
  const file = join(dir, "bad.jsonl");
  const check = (record: object, message: RegExp) => {
    writeFileSync(file, JSON.stringify({ prompt: "p", chosen: "a", rejected: "b" }) + "\n" + JSON.stringify(record) + "\n");
    assert.throws(() => readDpoData(file, chars), (err: Error) => err.message.startsWith(`${file}:2: `) && message.test(err.message));
  };
  check({ prompt: "p", chosen: "a" }, /missing "rejected"/);
  check({ prompt: "p", chosen: "a", rejected: 3 }, /"rejected" must be a string/);
  check({ prompt: "p", chosen: [{ role: "assistant", content: "a" }], rejected: [{ role: "assistant", content: "b" }] }, /"prompt" must be a list of \{role, content\} messages/);
});

test("pairs are cut to fit: the prompt from the left, completions from the right", () => {
  const e = { prompt: [1, 10, 11, 12, 13], chosen: [20, 21, 22, 2], rejected: [30, 2] };
  assert.deepEqual(fitDpoExample(e, { max_length: 20, max_prompt_length: 3, max_completion_length: 3 }), { example: { prompt: [11, 12, 13], chosen: [20, 21, 22], rejected: [30, 2] }, truncated: true });
  assert.deepEqual(fitDpoExample(e, { max_length: 6, max_prompt_length: null, max_completion_length: null }).example, { prompt: [1, 10, 11, 12, 13], chosen: [20], rejected: [30] });
  assert.deepEqual(fitDpoExample(e, { max_length: 9, max_prompt_length: 512, max_completion_length: null }), { example: e, truncated: false });
});
