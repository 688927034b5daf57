import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyChatTemplate, DEFAULT_CHAT_TEMPLATE, type ChatMessage } from "./chat.ts";
import { HfTokenizer, loadHfTokenizer } from "./hf.ts";
import { loadLlama2cTokenizer } from "./llama2c.ts";
import { loadTokenizer } from "./load.ts";
import { dataFile } from "./test-data.ts";

// Llama-2-chat's template as published in meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json.
const LLAMA2_CHAT_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}" +
  "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

const conversation: ChatMessage[] = [
  { role: "system", content: "You are kind." },
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello! " },
  { role: "user", content: "Bye" },
];

test("the default template: role markers, no special tokens, optional generation prompt", async () => {
  const tok = await loadLlama2cTokenizer(dataFile("llama2c/tok512.bin"));
  assert.equal(tok.chatTemplate, null);
  const expected = "<|system|>\nYou are kind.\n<|user|>\nHi\n<|assistant|>\nHello! \n<|user|>\nBye\n";
  assert.equal(applyChatTemplate(tok, conversation), expected);
  assert.equal(applyChatTemplate(tok, conversation, { addGenerationPrompt: true }), expected + "<|assistant|>\n");
  assert.equal(applyChatTemplate(tok, [], { addGenerationPrompt: true }), "<|assistant|>\n");
  assert.equal(applyChatTemplate(tok, conversation, { template: DEFAULT_CHAT_TEMPLATE }), expected);
  // The markers are plain text: they survive an encode/decode round trip through a 512-token vocabulary.
  assert.equal(tok.decode(tok.encode(expected), { skipSpecialTokens: true }), expected);
});

test("the Llama tokenizer's config has no template, so it gets the default", async () => {
  const tok = await loadHfTokenizer(dataFile("tokenizers/llama_tokenizer.json"), dataFile("tokenizers/llama_tokenizer_config.json"));
  assert.equal(applyChatTemplate(tok, conversation.slice(1, 2), { addGenerationPrompt: true }), "<|user|>\nHi\n<|assistant|>\n");
});

test("Llama-2-chat's template renders as transformers renders it, with the tokenizer's BOS/EOS text", async () => {
  const tok = await loadHfTokenizer(dataFile("tokenizers/llama_tokenizer.json"), dataFile("tokenizers/llama_tokenizer_config.json"));
  assert.equal(
    applyChatTemplate(tok, conversation, { template: LLAMA2_CHAT_TEMPLATE }),
    "<s>[INST] <<SYS>>\nYou are kind.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]",
  );
  assert.throws(
    () => applyChatTemplate(tok, [{ role: "user", content: "a" }, { role: "user", content: "b" }], { template: LLAMA2_CHAT_TEMPLATE }),
    /Conversation roles must alternate/,
  );
});

test("a tokenizer's own template is used, saved and loaded back", async () => {
  const json = JSON.parse(await readFile(dataFile("tokenizers/llama_tokenizer.json"), "utf8"));
  const tok = new HfTokenizer(json, { bos_token: "<s>", eos_token: "</s>", chat_template: LLAMA2_CHAT_TEMPLATE });
  const rendered = applyChatTemplate(tok, conversation.slice(1, 2));
  assert.equal(rendered, "<s>[INST] Hi [/INST]");
  // The rendered prompt already holds BOS as text, which Llama's tokenizer turns into id 1: encode it
  // without adding a second one.
  const ids = tok.encode(rendered, { addSpecialTokens: false });
  assert.equal(ids[0], 1);
  assert.equal(ids.filter((id) => id === 1).length, 1);

  const dir = await mkdtemp(join(tmpdir(), "tok-"));
  await tok.save(dir);
  const reloaded = await loadTokenizer(dir);
  assert.equal(reloaded.chatTemplate, LLAMA2_CHAT_TEMPLATE);
  assert.equal(applyChatTemplate(reloaded, conversation.slice(1, 2)), rendered);
});
