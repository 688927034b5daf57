import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Llama2cTokenizer, loadLlama2cTokenizer, parseLlama2cVocab } from "./llama2c.ts";
import { dataFile, fixtureFile } from "./test-data.ts";

const tok512 = await loadLlama2cTokenizer(dataFile("llama2c/tok512.bin"));

/** llama2.c's file format, for hand-made vocabularies: specials and byte tokens first, as the real files. */
function llama2cBytes(extra: [piece: string, score: number][]): Uint8Array {
  const entries: [string, number][] = [["<unk>", 0], ["\n<s>\n", 0], ["\n</s>\n", 0]];
  for (let b = 0; b < 256; b++) entries.push([`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0]);
  entries.push(...extra);
  const chunks: Buffer[] = [Buffer.from(new Int32Array([16]).buffer)];
  for (const [piece, score] of entries) {
    const bytes = Buffer.from(piece, "utf8");
    const header = Buffer.alloc(8);
    header.writeFloatLE(score, 0);
    header.writeInt32LE(bytes.length, 4);
    chunks.push(header, bytes);
  }
  return Buffer.concat(chunks);
}

test("tok512 encodes the prompts of llama2.c's stories260K reference run", async () => {
  // prompt_ids were printed by run.c itself (test/fixtures/stories260K-greedy.json).
  const reference = JSON.parse(await readFile(fixtureFile("stories260K-greedy.json"), "utf8"));
  for (const c of reference.cases) {
    assert.deepEqual(tok512.encode(c.prompt), c.prompt_ids, `prompt ${JSON.stringify(c.prompt)}`);
  }
  assert.deepEqual(tok512.encode("Once upon a time"), [1, 403, 407, 261, 378]);
});

test("tok512 decodes the greedy generation with run.c's spacing", async () => {
  const reference = JSON.parse(await readFile(fixtureFile("stories260K-greedy.json"), "utf8"));
  for (const c of reference.cases) {
    const text = tok512.decode([...c.prompt_ids, ...c.completion_ids], { skipSpecialTokens: true });
    assert.equal(text, c.text, `prompt ${JSON.stringify(c.prompt)}`);
  }
  const fromBos = reference.cases[0];
  assert.ok(
    tok512.decode([1, ...fromBos.completion_ids], { skipSpecialTokens: true }).startsWith(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.",
    ),
  );
});

test("decode: the space after BOS goes only when BOS is not shown; a continuation keeps its space", () => {
  const ids = tok512.encode("Once upon a time");
  assert.equal(tok512.decode(ids, { skipSpecialTokens: true }), "Once upon a time");
  assert.equal(tok512.decode(ids), "<s> Once upon a time");
  assert.equal(tok512.decode(ids.slice(2)), " upon a time");
  assert.equal(tok512.decode([...ids, 2]), "<s> Once upon a time</s>");
  assert.equal(tok512.decode([]), "");
  assert.throws(() => tok512.decode([512]), /token id 512 is outside the vocabulary \(0\.\.511\)/);
});

test("round trip through tok512, including characters it only has as bytes", () => {
  for (const text of ["Once upon a time", "Lily's mom said, \"Hi!\"", "x\n\ny", "café 😀 東京", "  two leading spaces", "tab\there"]) {
    assert.equal(tok512.decode(tok512.encode(text), { skipSpecialTokens: true }), text);
  }
  assert.deepEqual(tok512.encode(""), [1]);
  assert.deepEqual(tok512.encode("", { addSpecialTokens: false }), []);
  assert.equal(tok512.encode("Once", { addSpecialTokens: false })[0], 403);
});

test("byte fallback: a codepoint outside the vocabulary becomes its UTF-8 bytes at id byte + 3", () => {
  const space = tok512.encode(" ", { addSpecialTokens: false });
  assert.equal(space.length, 2, "dummy prefix plus the space itself");
  // 😀 is F0 9F 98 80; byte tokens never merge with anything in tok512.
  assert.deepEqual(tok512.encode("😀", { addSpecialTokens: false }), [space[0], 0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
  // A lone surrogate is what TextEncoder sends as U+FFFD (EF BF BD), as run.c would receive it.
  assert.deepEqual(tok512.encode("\ud800", { addSpecialTokens: false }).slice(1), [0xef + 3, 0xbf + 3, 0xbd + 3]);
});

test("merges follow the merged token's score, not position; ties go to the leftmost pair", () => {
  const vocab = parseLlama2cVocab(llama2cBytes([[" ", -1], ["a", -2], ["b", -3], ["ab", -6], ["ba", -5], ["aa", -4]]), "hand-made");
  const tok = new Llama2cTokenizer(vocab);
  const id = (piece: string) => vocab.pieces.indexOf(piece);
  // " aba": "ab" (-6) comes first left to right, but "ba" (-5) scores higher.
  assert.deepEqual(tok.encode("aba", { addSpecialTokens: false }), [id(" "), id("a"), id("ba")]);
  // " aaa": both "aa" pairs tie; run.c takes the leftmost.
  assert.deepEqual(tok.encode("aaa", { addSpecialTokens: false }), [id(" "), id("aa"), id("a")]);
  // "c" is not in the vocabulary: byte fallback.
  assert.deepEqual(tok.encode("c", { addSpecialTokens: false }), [id(" "), "c".charCodeAt(0) + 3]);
});

test("the 32000-token Llama 2 vocabulary reproduces Hugging Face's golden Llama encoding", async () => {
  // Same vocabulary as llama_tokenizer.json, so run.c's algorithm must land on the same ids.
  const golden = JSON.parse(await readFile(dataFile("tokenizers/llama_encoded.json"), "utf8"));
  const tok = await loadLlama2cTokenizer(dataFile("llama2c/tokenizer.bin"));
  assert.equal(tok.vocabSize, 32000);
  assert.deepEqual(tok.encode(golden.text), golden.token_ids);
  assert.equal(tok.decode(golden.token_ids), golden.decoded_text);
});

test("a truncated or corrupt tokenizer.bin says what was expected where", async () => {
  const full = await readFile(dataFile("llama2c/tok512.bin"));
  assert.throws(() => parseLlama2cVocab(full.subarray(0, 2), "t.bin"), /t\.bin: truncated llama2\.c tokenizer: expected int32 max_token_length \(4 bytes\) at offset 0/);
  // Token 0 is "<unk>": 4 + 4 + 4 + 5 = 17 bytes; cut inside its text.
  assert.throws(() => parseLlama2cVocab(full.subarray(0, 15), "t.bin"), /expected the 5 bytes of token 0 \(5 bytes\) at offset 12, but the file has 3 bytes left/);
  assert.throws(() => parseLlama2cVocab(full.subarray(0, 19), "t.bin"), /expected float32 score of token 1 \(4 bytes\) at offset 17/);
  const corrupt = Buffer.from(full);
  corrupt.writeInt32LE(1000, 8); // token 0's length
  assert.throws(() => parseLlama2cVocab(corrupt, "t.bin"), /token 0 has length 1000 at offset 8, expected 0\.\.7/);
  // Header, then <unk>, <s>, </s> and <0x00>: a whole file, just too short a vocabulary.
  assert.throws(() => parseLlama2cVocab(llama2cBytes([]).subarray(0, 4 + 13 + 13 + 14 + 14), "t.bin"), /4 tokens, expected at least 259/);
  const notBytes = Buffer.from(llama2cBytes([]));
  const token4Text = 4 + 13 + 13 + 14 + 14 + 8; // header, tokens 0-3, then token 4's score and length
  notBytes.write("<0x0G>", token4Text, "latin1");
  assert.throws(() => parseLlama2cVocab(notBytes, "t.bin"), /not a byte-fallback vocabulary: token 4 is "<0x0G>", expected <0x01>/);
  assert.throws(() => new Llama2cTokenizer(parseLlama2cVocab(llama2cBytes([["a", -1], ["a", -2]]), "t.bin")), /piece "a" appears twice \(ids 259 and 260\)/);

  const dir = await mkdtemp(join(tmpdir(), "tok-"));
  await writeFile(join(dir, "cut.bin"), full.subarray(0, 3000));
  await assert.rejects(loadLlama2cTokenizer(join(dir, "cut.bin")), new RegExp(`${join(dir, "cut.bin")}: truncated`));
  await assert.rejects(loadLlama2cTokenizer(join(dir, "missing.bin")), new RegExp(`tokenizer file not found: ${join(dir, "missing.bin")}`));
});
