import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InputError } from "../io/errors.ts";
import { HfTokenizer, loadGpt2Tokenizer, loadHfTokenizer } from "./hf.ts";
import { loadTokenizer } from "./load.ts";
import { dataFile } from "./test-data.ts";

const llamaJson = dataFile("tokenizers/llama_tokenizer.json");
const llamaConfig = dataFile("tokenizers/llama_tokenizer_config.json");
const gpt2Vocab = dataFile("tokenizers/gpt2-vocab.json");
const gpt2Merges = dataFile("tokenizers/gpt2-merges.txt");

const readJson = async (path: string) => JSON.parse(await readFile(path, "utf8"));

test("Llama tokenizer.json matches the golden encoding and decoding", async () => {
  const golden = await readJson(dataFile("tokenizers/llama_encoded.json"));
  const tok = await loadHfTokenizer(llamaJson, llamaConfig);
  assert.deepEqual(tok.encode(golden.text), golden.token_ids);
  assert.equal(tok.decode(golden.token_ids), golden.decoded_text);
  assert.equal(tok.decode(golden.token_ids, { skipSpecialTokens: true }), golden.text);
  assert.deepEqual(tok.encode(golden.text, { addSpecialTokens: false }), golden.token_ids.slice(1));
  assert.equal(tok.vocabSize, 32000);
  assert.equal(tok.bosTokenId, 1);
  assert.equal(tok.eosTokenId, 2);
  assert.equal(tok.padTokenId, null);
  assert.equal(tok.chatTemplate, null, "this config has no chat_template");
  // Without a config saying otherwise, decode keeps spaces before punctuation.
  const bare = await loadHfTokenizer(llamaJson);
  assert.equal(bare.decode(bare.encode("Hi there . Yes !"), { skipSpecialTokens: true }), "Hi there . Yes !");
  assert.equal(bare.bosTokenId, null, "special tokens are named in tokenizer_config.json only");
  assert.equal(tok.modelMaxLength, 2048);
});

test("GPT-2 vocab.json + merges.txt matches the golden encoding and decoding", async () => {
  const golden = await readJson(dataFile("tokenizers/gpt2_encoded_tokens.json"));
  const tok = await loadGpt2Tokenizer(gpt2Vocab, gpt2Merges);
  assert.deepEqual(tok.encode(golden.text), golden.token_ids, "GPT-2 adds no BOS");
  assert.equal(tok.decode(golden.token_ids), golden.decoded_text);
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.bosTokenId, 50256);
  assert.equal(tok.eosTokenId, 50256);
  assert.equal(tok.decode([50256]), "<|endoftext|>");
  assert.equal(tok.decode([...tok.encode("Hi there ."), 50256], { skipSpecialTokens: true }), "Hi there .");
  assert.equal(tok.decode([]), "");
  assert.throws(() => tok.decode([50257]), /token id 50257 is outside the vocabulary \(0\.\.50256\)/);
});

test("loadTokenizer finds both layouts in a directory and a tokenizer.json's sibling config", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tok-"));
  // Links, not copies: the data stays where MANIFEST.md puts it.
  await symlink(llamaJson, join(dir, "tokenizer.json"));
  await symlink(llamaConfig, join(dir, "tokenizer_config.json"));
  for (const tok of [await loadTokenizer(dir), await loadTokenizer(join(dir, "tokenizer.json"))]) {
    assert.equal(tok.bosTokenId, 1, "bos_token comes from tokenizer_config.json");
    assert.deepEqual(tok.encode("Hello"), [1, 15043]);
  }

  const gpt2Dir = await mkdtemp(join(tmpdir(), "tok-"));
  await symlink(gpt2Vocab, join(gpt2Dir, "vocab.json"));
  await symlink(gpt2Merges, join(gpt2Dir, "merges.txt"));
  const gpt2 = await loadTokenizer(gpt2Dir);
  assert.deepEqual(gpt2.encode("Hello world"), [15496, 995]);

  const tok512 = await loadTokenizer(dataFile("llama2c/tok512.bin"));
  assert.equal(tok512.vocabSize, 512);
});

test("save writes tokenizer.json and tokenizer_config.json that load back the same", async () => {
  const original = await loadHfTokenizer(llamaJson, llamaConfig);
  const dir = join(await mkdtemp(join(tmpdir(), "tok-")), "model");
  await original.save(dir);
  const config = await readJson(join(dir, "tokenizer_config.json"));
  assert.equal(config.bos_token, "<s>");
  assert.equal(config.eos_token, "</s>");
  assert.equal(config.pad_token, null);
  assert.equal(config.model_max_length, 2048);
  assert.equal(config.tokenizer_class, "LlamaTokenizer");
  assert.equal(config.chat_template, undefined);
  const reloaded = await loadTokenizer(dir);
  const text = "Fatouville-Grestain est une commune\n du Nord 😀";
  assert.deepEqual(reloaded.encode(text), original.encode(text));
  assert.equal(reloaded.bosTokenId, 1);

  const gpt2Dir = join(dir, "gpt2");
  await (await loadGpt2Tokenizer(gpt2Vocab, gpt2Merges)).save(gpt2Dir);
  const gpt2Config = await readJson(join(gpt2Dir, "tokenizer_config.json"));
  assert.equal(gpt2Config.tokenizer_class, "GPT2Tokenizer");
  assert.equal(gpt2Config.eos_token, "<|endoftext|>");
  assert.deepEqual((await loadTokenizer(gpt2Dir)).encode("Hello world"), [15496, 995]);
});

test("a chat_template in the config is read, including the list-of-named-templates form", async () => {
  const json = await readJson(llamaJson);
  const single = new HfTokenizer(json, { bos_token: "<s>", chat_template: "{{ bos_token }}x" });
  assert.equal(single.chatTemplate, "{{ bos_token }}x");
  const named = new HfTokenizer(json, { chat_template: [{ name: "tool_use", template: "t" }, { name: "default", template: "d" }] });
  assert.equal(named.chatTemplate, "d");
});

test("clear errors: missing files, unsupported model types, bad JSON, empty directories", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tok-"));
  await assert.rejects(loadTokenizer(join(dir, "nope.bin")), new RegExp(`tokenizer not found: ${join(dir, "nope.bin")}`));
  await assert.rejects(loadHfTokenizer(join(dir, "tokenizer.json")), new RegExp(`tokenizer file not found: ${join(dir, "tokenizer.json")}`));
  await assert.rejects(loadTokenizer(dir), /no tokenizer in directory .*: expected tokenizer\.json, or vocab\.json and merges\.txt/);

  await writeFile(join(dir, "tokenizer.json"), JSON.stringify({ model: { type: "WordLevel", vocab: {} } }));
  await assert.rejects(loadTokenizer(dir), /unsupported tokenizer\.json model type "WordLevel" \(supported: BPE, Unigram, WordPiece\)/);
  await writeFile(join(dir, "tokenizer.json"), "{ not json");
  await assert.rejects(loadTokenizer(dir), /tokenizer\.json: not valid JSON/);
  // GPT-2's vocab.json given alone: the user's mistake, said as such (an InputError prints without "internal error").
  await writeFile(join(dir, "vocab.json"), JSON.stringify({ a: 0, b: 1 }));
  await assert.rejects(loadTokenizer(join(dir, "vocab.json")), (e: Error) =>
    e instanceof InputError && /vocab\.json: unsupported tokenizer\.json model type undefined .*give the directory that holds both/.test(e.message));
  await assert.rejects(loadTokenizer(dir), (e: Error) => e instanceof InputError);
});
