// The benchmark's stand-in vocabulary: every byte has its own token, so any text encodes and
// decodes back unchanged (the GGUF export needs a real tokenizer, even though only ids are timed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { byteLevelBenchTokenizer } from "./llama-cpp-generate.ts";

test("the benchmark's byte-level tokenizer has one token per byte and round-trips any text", () => {
  const tok = byteLevelBenchTokenizer();
  assert.equal(tok.vocabSize, 257);
  assert.equal(tok.eosTokenId, 256);
  const text = "Once upon a time, naïve café\tüber\n\u0000\u00ad~ 日本";
  const ids = tok.encode(text);
  assert.equal(ids.length, new TextEncoder().encode(text).length);
  assert.deepEqual(ids, [...new TextEncoder().encode(text)]);
  assert.equal(tok.decode(ids), text);
});
