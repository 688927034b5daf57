// A llama2.c tokenizer saved as a Hugging Face tokenizer.json must tokenize exactly like run.c.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { llama2cToHfTokenizerJson, loadLlama2cTokenizer, type Llama2cTokenizer } from "./llama2c.ts";
import { loadTokenizer } from "./load.ts";
import { dataFile } from "./test-data.ts";
import type { Tokenizer } from "./tokenizer.ts";

const readJson = async (path: string) => JSON.parse(await readFile(path, "utf8"));

async function sampleTexts(): Promise<string[]> {
  const stories = await readFile(dataFile("tinystories/tinystories_sample.txt"), "utf8");
  const texts = [
    stories,
    ...stories.split("\n"),
    "",
    " ",
    "naïve café — Zürich, 東京の日本語",
    "e\u0301 (combining accent) ß ø",
    "👍🏽 🎉🎉 👨‍👩‍👧",
    "a  b   c    d",
    "  leading and trailing   ",
    "line1\nline2\n\n\tTabbed\r\nend",
    "Lily's \"ball\"!? 1234567890 #@%",
  ];
  // Runs of spaces and newlines: the Llama 2 vocabulary has tied-score whitespace tokens, where
  // llama2.c's leftmost-tie rule and BPE's merge ranks could disagree.
  for (let n = 1; n <= 33; n += 4) texts.push(`a${" ".repeat(n)}b`, "\n".repeat(n) + "x");
  return texts;
}

async function saveAndReload(tok: Llama2cTokenizer): Promise<{ dir: string; hf: Tokenizer }> {
  const dir = join(await mkdtemp(join(tmpdir(), "tok-")), "model");
  await tok.save(dir);
  return { dir, hf: await loadTokenizer(dir) };
}

for (const file of ["tok512.bin", "tokenizer.bin"]) {
  test(`${file} saved as tokenizer.json encodes and decodes like llama2.c`, async () => {
    const llama2c = await loadLlama2cTokenizer(dataFile(`llama2c/${file}`));
    const { hf } = await saveAndReload(llama2c);
    assert.equal(hf.vocabSize, llama2c.vocabSize);
    assert.equal(hf.bosTokenId, 1);
    assert.equal(hf.eosTokenId, 2);
    for (const text of await sampleTexts()) {
      const ids = llama2c.encode(text);
      const label = JSON.stringify(text.slice(0, 50));
      assert.deepEqual(hf.encode(text), ids, `encode ${label}`);
      assert.deepEqual(hf.encode(text, { addSpecialTokens: false }), ids.slice(1), `encode without BOS ${label}`);
      assert.equal(hf.decode(ids, { skipSpecialTokens: true }), llama2c.decode(ids, { skipSpecialTokens: true }), `decode ${label}`);
      assert.equal(hf.decode([...ids, 2]), llama2c.decode([...ids, 2]), `decode with specials ${label}`);
      assert.equal(llama2c.decode(ids, { skipSpecialTokens: true }), text, `round trip ${label}`);
    }
  });
}

test("the saved tokenizer_config.json names the special tokens and the class", async () => {
  const { dir } = await saveAndReload(await loadLlama2cTokenizer(dataFile("llama2c/tok512.bin")));
  const config = await readJson(join(dir, "tokenizer_config.json"));
  assert.equal(config.bos_token, "<s>");
  assert.equal(config.eos_token, "</s>");
  assert.equal(config.unk_token, "<unk>");
  assert.equal(config.tokenizer_class, "LlamaTokenizer");
  assert.equal(config.model_max_length, 1e30, "llama2.c tokenizers carry no length: transformers' no-limit value");
  assert.equal(config.chat_template, undefined);
  const json = await readJson(join(dir, "tokenizer.json"));
  assert.equal(json.model.byte_fallback, true);
  assert.equal(json.model.vocab["<0x0A>"], 13);
  assert.equal(json.model.vocab["▁t"], 259, "llama2.c's ' ' is sentencepiece's '▁' again");
});

test("merges derived from tokenizer.bin are the ones HF's converter made for Llama 2", async () => {
  // llama_tokenizer.json was converted by transformers from the same sentencepiece model.
  const theirs: string[] = (await readJson(dataFile("tokenizers/llama_tokenizer.json"))).model.merges;
  const vocab = (await loadLlama2cTokenizer(dataFile("llama2c/tokenizer.bin"))).vocab;
  const ours = (llama2cToHfTokenizerJson(vocab) as { model: { merges: string[] } }).model.merges;
  assert.deepEqual([...ours].sort(), [...theirs].sort());
  // Order is identical except among the all-"▁" merges, which tie at score -1e9 and where the
  // converters break ties differently (the encode equivalence above covers those runs).
  const untied = (merges: string[]) => merges.filter((m) => !/^[▁ ]+$/.test(m));
  assert.deepEqual(untied(ours), untied(theirs));
  assert.ok(untied(ours).length > 61000);
});
