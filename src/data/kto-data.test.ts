// KTO's data: unpaired records (text and chat), pairs unpaired as TRL does (with the same token ids
// as DPO reads them), the rt-polarity folder, one-line errors naming file:line and the field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../io/test-helpers.ts";
import { readDpoData } from "./dpo-data.ts";
import { fitKtoExample, readKtoData, type KtoExample } from "./kto-data.ts";
import { chars } from "./test-helpers.ts";

const show = (e: KtoExample) => [chars.decode(e.prompt), chars.decode(e.completion), e.label, e.completion.at(-1)];

async function file(records: unknown[]): Promise<string> {
  const path = join(await tempDir(), "kto.jsonl");
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return path;
}

test("unpaired records (text and chat) and pairs, each pair a desirable and an undesirable example", async () => {
  const user = [{ role: "user", content: "Hi" }];
  const path = await file([
    { prompt: "Q: sky?", completion: " blue", label: true },
    { prompt: user, completion: [{ role: "assistant", content: "Go away." }], label: false },
    { prompt: "Q: sea?", chosen: " wet", rejected: " dry" },
    { chosen: "The sky is blue.", rejected: "The sky is grey." },
  ]);
  const records = readKtoData(path, chars);
  assert.deepEqual(records.map((r) => r.map(show)), [
    [["Q: sky?", " blue", true, 2]],
    [["<|user|>\nHi\n<|assistant|>\n", "Go away.\n", false, 2]],
    [["Q: sea?", " wet", true, 2], ["Q: sea?", " dry", false, 2]],
    [["The sky is", " blue.", true, 2], ["The sky is", " grey.", false, 2]],
  ]);
  // A pair's halves carry exactly the ids DPO reads for it.
  const dpoPath = await file([{ prompt: "Q: sea?", chosen: " wet", rejected: " dry" }]);
  const [dpo] = readDpoData(dpoPath, chars);
  assert.deepEqual(records[2], [{ prompt: dpo!.prompt, completion: dpo!.chosen, label: true }, { prompt: dpo!.prompt, completion: dpo!.rejected, label: false }]);
});

test("completions marked as cut off get no EOS: completion_truncated, and a pair's chosen_truncated / rejected_truncated", async () => {
  const path = await file([
    { prompt: "Q:", completion: " blue", label: true, completion_truncated: true },
    { prompt: "Q:", completion: " blue", label: true, completion_truncated: false },
    { prompt: "Q:", chosen: " wet", rejected: " dry", rejected_truncated: true },
  ]);
  assert.deepEqual(readKtoData(path, chars).map((r) => r.map(show)), [
    [["Q:", " blue", true, "e".charCodeAt(0)]],
    [["Q:", " blue", true, 2]],
    [["Q:", " wet", true, 2], ["Q:", " dry", false, "y".charCodeAt(0)]],
  ]);
  const bad = await file([{ prompt: "Q:", completion: "a", label: true, completion_truncated: 1 }]);
  assert.throws(() => readKtoData(bad, chars), /:1: "completion_truncated" must be true or false/);
});

test("the rt-polarity folder: positive sentences desirable, negative ones not, no prompt", async () => {
  const dir = await tempDir();
  writeFileSync(join(dir, "rt-polarity.pos"), "a fine film\nwarm and funny\n");
  writeFileSync(join(dir, "rt-polarity.neg"), "a dull film\nflat\n");
  assert.deepEqual(readKtoData(dir, chars).map((r) => r.map(show)), [
    [["", "a fine film", true, 2], ["", "a dull film", false, 2]],
    [["", "warm and funny", true, 2], ["", "flat", false, 2]],
  ]);
});

test("bad records name the file:line and the field", async () => {
  const check = async (record: object, message: RegExp) => {
    const path = await file([{ prompt: "p", completion: "a", label: true }, record]);
    assert.throws(() => readKtoData(path, chars), (err: Error) => err.message.startsWith(`${path}:2: `) && message.test(err.message) && !err.message.includes("\n"));
  };
  await check({ prompt: "p", completion: "a", label: "yes" }, /"label" must be true or false/);
  await check({ completion: "a", label: true }, /"prompt" is missing/);
  await check({ prompt: "p", completion: 3, label: false }, /"completion" must be a string or a list of \{role, content\} messages/);
  await check({ prompt: [{ role: "user", content: "Hi" }], completion: "a", label: false }, /"completion" is a string but "prompt" is a list of messages/);
  await check({ prompt: "p", completion: "a" }, /a prompt-completion \(standard\) record; KTO reads unpaired preferences/);
  await check({ prompt: "p", chosen: "a" }, /"rejected" is missing/);
  await check({ text: "hello" }, /language modeling/);
});

test("examples are cut as DPO cuts pairs: the prompt from the left, the completion from the right", () => {
  const e = { prompt: [1, 10, 11, 12, 13], completion: [20, 21, 22, 2], label: false };
  assert.deepEqual(fitKtoExample(e, { max_length: 20, max_prompt_length: 3, max_completion_length: 3 }), { example: { prompt: [11, 12, 13], completion: [20, 21, 22], label: false }, truncated: true });
  assert.deepEqual(fitKtoExample(e, { max_length: 6, max_prompt_length: null, max_completion_length: null }).example.completion, [20]);
  assert.deepEqual(fitKtoExample(e, { max_length: 9, max_prompt_length: 512, max_completion_length: null }), { example: e, truncated: false });
});
