import assert from "node:assert/strict";
import { test } from "node:test";
import { loadTokenizer } from "../tokenizers/load.ts";
import { completionText } from "../generation/text.ts";
import { TextStream } from "./text-stream.ts";

const tok = await loadTokenizer("../shared/data/llama2c/tok512.bin");
const promptIds = tok.encode("Once upon a time", { addSpecialTokens: true });
// Sentencepiece puts its own space before the text, which then reads " there..." after the prompt.
const completion = (text: string) => tok.encode(text, { addSpecialTokens: false });

/** Pushes the completion one token at a time; returns every delta and whether a stop string ended it. */
function streamed(ids: number[], stops: string[]) {
  const s = new TextStream(tok, promptIds, stops);
  const deltas: string[] = [];
  for (let i = 1; i <= ids.length; i++) {
    const { delta, stopped } = s.push(ids.slice(0, i));
    deltas.push(delta);
    if (stopped) return { deltas, stopped, text: s.text };
  }
  deltas.push(s.flush());
  return { deltas, stopped: false, text: s.text };
}

test("a stop string spread over several tokens is never sent, not even its start", () => {
  const ids = completion("there was a little girl named Lily.");
  const { deltas, stopped, text } = streamed(ids, [" named Lily"]);
  assert.ok(stopped);
  assert.equal(text, " there was a little girl");
  assert.equal(deltas.join(""), text);
  // Every prefix sent is a prefix of the final text: nothing sent was taken back.
  let sent = "";
  for (const d of deltas) assert.ok(text.startsWith((sent += d)), JSON.stringify(sent));
});

test("a start of a stop string that turns out not to be one is sent once it is clear", () => {
  const { deltas, stopped } = streamed(completion("there was a little girl named Tom."), [" named Lily"]);
  assert.ok(!stopped);
  assert.equal(deltas.join(""), " there was a little girl named Tom.");
});

test("a character split over byte tokens is sent whole, never as U+FFFD", () => {
  const ids = completion("a café with 🐱 cats");
  assert.ok(ids.length > completion("a cafe with cats").length + 2, "the test needs byte-fallback tokens");
  const { deltas } = streamed(ids, []);
  assert.ok(deltas.every((d) => !d.includes("\uFFFD")), JSON.stringify(deltas));
  assert.equal(deltas.join(""), " a café with 🐱 cats");
});

test("a long prompt reads the same as its last tokens: the stream decodes only those with the completion", () => {
  const longPrompt = tok.encode("Lily and Tom went to the park. They played with a red ball all day. Then it was time", { addSpecialTokens: true });
  const ids = completion("to go home.");
  const s = new TextStream(tok, longPrompt, []);
  const streamedText = ids.map((_, i) => s.push(ids.slice(0, i + 1)).delta).join("") + s.flush();
  assert.ok(longPrompt.length > 16);
  assert.equal(streamedText, completionText(tok, longPrompt, ids));
  assert.equal(streamedText, " to go home.");
});
