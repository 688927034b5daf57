// The readers of files a user names (data, prompts, configs, feedback imports) all go through
// io/text-file.ts: a UTF-8 byte-order mark is accepted, errors name the file's own line numbers
// (blank lines counted), and a directory or a missing file is named as such.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { readRecordLines } from "../data/datasets.ts";
import { readPromptFile } from "../rl/prompts.ts";
import { readConfigFile } from "../train/config.ts";
import { InputError } from "./errors.ts";
import { tempDir } from "./test-helpers.ts";
import { numberedLines, readInputText } from "./text-file.ts";

const BOM = "\ufeff";

test("readInputText drops a byte-order mark, gunzips .gz, and names a missing file, a directory and bad gzip", async () => {
  const dir = await tempDir();
  writeFileSync(join(dir, "a.txt"), BOM + "hello");
  assert.equal(readInputText(join(dir, "a.txt")), "hello");
  writeFileSync(join(dir, "a.txt.gz"), gzipSync(BOM + "zipped"));
  assert.equal(readInputText(join(dir, "a.txt.gz")), "zipped");
  writeFileSync(join(dir, "bad.gz"), "not gzip");
  assert.throws(() => readInputText(join(dir, "bad.gz")), (e: Error) => e instanceof InputError && /bad\.gz: not a valid gzip file/.test(e.message));
  assert.throws(() => readInputText(join(dir, "none.jsonl"), "data file"), (e: Error) => e instanceof InputError && e.message === `data file not found: ${join(dir, "none.jsonl")}`);
  mkdirSync(join(dir, "sub"));
  assert.throws(() => readInputText(join(dir, "sub"), "prompt file"), (e: Error) => e instanceof InputError && e.message === `${join(dir, "sub")} is a directory; expected a prompt file`);
});

test("numberedLines keeps the file's line numbers across blank lines and CRLF", () => {
  assert.deepEqual(numberedLines("a\r\n\n  \nb\n"), [{ line: 1, text: "a\r" }, { line: 4, text: "b" }]);
});

test("data, prompt and config readers accept a BOM and name FILE:LINE counting blank lines", async () => {
  const dir = await tempDir();
  const data = join(dir, "d.jsonl");
  writeFileSync(data, BOM + JSON.stringify({ chosen: "a", rejected: "b" }) + "\n\n\n{oops\n");
  const lines = readRecordLines(data);
  assert.deepEqual(lines[0], { record: { chosen: "a", rejected: "b" }, where: `${data}:1` });
  assert.equal(lines[1]!.where, `${data}:4`);
  assert.ok("invalid" in lines[1]!);

  const prompts = join(dir, "p.jsonl");
  writeFileSync(prompts, BOM + JSON.stringify({ prompt: "hi" }) + "\n\n" + JSON.stringify({ prompt: 3 }) + "\n");
  await assert.rejects(readPromptFile(prompts), (e: Error) => e.message.startsWith(`${prompts}:3: field "prompt"`));
  writeFileSync(prompts, BOM + JSON.stringify({ prompt: "hi" }) + "\n");
  assert.deepEqual(await readPromptFile(prompts), ["hi"]);
  const txt = join(dir, "p.txt");
  writeFileSync(txt, BOM + "one\n\n two \n");
  assert.deepEqual(await readPromptFile(txt), ["one", "two"]);
  await assert.rejects(readPromptFile(dir), (e: Error) => e instanceof InputError && e.message === `${dir} is a directory; expected a prompt file`);

  const config = join(dir, "c.json");
  writeFileSync(config, BOM + JSON.stringify({ learning_rate: 0.001 }));
  assert.deepEqual(readConfigFile(config), { learning_rate: 0.001 });
  assert.throws(() => readConfigFile(dir), (e: Error) => e instanceof InputError && /is a directory; expected a config file/.test(e.message));
});
