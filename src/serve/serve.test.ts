// `rlhf serve` end to end, driven by the official `openai` client (a client no one here wrote)
// against stories260K: completions, chat, streaming, n, stop, logprobs, seed, usage, OpenAI's error
// shapes, batching, and a client that disconnects mid-stream.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { applyChatTemplate, DEFAULT_CHAT_TEMPLATE } from "../tokenizers/chat.ts";
import { resolveTokenizer } from "../models/load.ts";
import { runRlhfOk } from "../cli/test-helpers.ts";
import { buildServeApp } from "./app.ts";
import { openServer, type ModelServer } from "./server.ts";
import { disconnectMidStream } from "./test-helpers.ts";

const MODEL = "../shared/data/llama2c/stories260K.bin";
const KEY = "sk-serve-test";
let server: ModelServer;
let client: OpenAI;
let baseURL: string;

before(async () => {
  server = await openServer({ model: MODEL, apiKey: KEY, chatTemplate: "default", maxBatch: 8, log: { write() {} } });
  await server.app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = server.app.server.address() as { port: number };
  baseURL = `http://127.0.0.1:${port}/v1`;
  client = new OpenAI({ baseURL, apiKey: KEY, maxRetries: 0 });
});
after(async () => server?.close());

const model = "stories260K";
const story = "Once upon a time";

test("lists the model", async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [model]);
  assert.equal((await client.models.retrieve(model)).id, model);
});

test("greedy completion is token for token rlhf generate's", async () => {
  const r = await client.completions.create({ model, prompt: story, max_tokens: 40, temperature: 0, logprobs: 0 });
  const cli = JSON.parse(runRlhfOk(["generate", "--model", MODEL, "--prompt", story, "--max-new-tokens", "40", "--temperature", "0", "--json"]).stdout);
  const choice = r.choices[0]!;
  assert.equal(choice.text, cli.text);
  assert.equal(choice.finish_reason, "length");
  assert.deepEqual(r.usage, { prompt_tokens: cli.prompt_ids.length, completion_tokens: 40, total_tokens: cli.prompt_ids.length + 40 });
  // Greedy log-probabilities are the model's own, so they match generate's.
  const served = choice.logprobs!.token_logprobs!;
  assert.equal(served.length, cli.logprobs.length);
  served.forEach((lp, i) => assert.ok(Math.abs(lp - cli.logprobs[i]) < 1e-5, `token ${i}: ${lp} vs ${cli.logprobs[i]}`));
});

test("completion logprobs: the sampled token's and the top k, with offsets into the text", async () => {
  const r = await client.completions.create({ model, prompt: story, max_tokens: 12, temperature: 0, logprobs: 3 });
  const lp = r.choices[0]!.logprobs!;
  assert.equal(lp.tokens!.join(""), r.choices[0]!.text);
  lp.top_logprobs!.forEach((top, i) => {
    const values = Object.values(top!);
    assert.equal(values.length, 3);
    // Greedy: the chosen token is the most likely one.
    assert.equal(Math.max(...values), lp.token_logprobs![i]);
    assert.equal(lp.text_offset![i], lp.tokens!.slice(0, i).join("").length);
  });
});

test("chat: the prompt through the chat template, streamed deltas equal the whole answer", async () => {
  const messages = [{ role: "system" as const, content: "You tell stories." }, { role: "user" as const, content: "A story about a cat" }];
  const whole = await client.chat.completions.create({ model, messages, max_completion_tokens: 30, temperature: 0.8, seed: 11 });
  const tok = await resolveTokenizer(server.model);
  const promptTokens = tok.encode(applyChatTemplate(tok, messages, { addGenerationPrompt: true, template: DEFAULT_CHAT_TEMPLATE })).length;
  assert.equal(whole.object, "chat.completion");
  assert.equal(whole.choices[0]!.message.role, "assistant");
  assert.ok(whole.choices[0]!.message.content!.length > 0);
  assert.equal(whole.usage!.prompt_tokens, promptTokens);

  const stream = await client.chat.completions.create({ model, messages, max_tokens: 30, temperature: 0.8, seed: 11, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant");
  assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? "").join(""), whole.choices[0]!.message.content);
  assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason).length, 1);
  assert.equal(chunks.at(-2)!.choices[0]!.finish_reason, whole.choices[0]!.finish_reason);
  const last = chunks.at(-1)!;
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, whole.usage);
});

test("chat logprobs: top_logprobs per token with bytes", async () => {
  const r = await client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 2 });
  const content = r.choices[0]!.logprobs!.content!;
  assert.equal(content.length, r.usage!.completion_tokens);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 2);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, "utf8")]);
    assert.equal(t.logprob, t.top_logprobs[0]!.logprob);
  }
});

test("n choices from one seed: distinct, and the same again for the same request", async () => {
  const ask = () => client.completions.create({ model, prompt: story, max_tokens: 20, n: 3, temperature: 1, seed: 42 });
  const [a, b] = [await ask(), await ask()];
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
  assert.ok(new Set(a.choices.map((c) => c.text)).size > 1, "three samples at temperature 1 should not all agree");
  assert.equal(a.usage!.completion_tokens, 60);
});

test("stop strings cut the text before the stop, streamed or not", async () => {
  const full = (await client.completions.create({ model, prompt: story, max_tokens: 40, temperature: 0 })).choices[0]!.text;
  const stop = [" Lily", "zzz"];
  assert.ok(full.includes(" Lily"), full);
  const r = await client.completions.create({ model, prompt: story, max_tokens: 40, temperature: 0, stop });
  assert.equal(r.choices[0]!.text, full.slice(0, full.indexOf(" Lily")));
  assert.equal(r.choices[0]!.finish_reason, "stop");
  const stream = await client.completions.create({ model, prompt: story, max_tokens: 40, temperature: 0, stop, stream: true });
  let streamed = "";
  for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? "";
  assert.equal(streamed, r.choices[0]!.text);
});

test("a seeded request gives the same text alone and batched with others", async () => {
  const request = { model, prompt: "The little dog", max_tokens: 30, temperature: 1, top_p: 0.9, seed: 7 };
  const alone = (await client.completions.create(request)).choices[0]!.text;
  const before = { ...server.scheduler.stats };
  const others = ["Tom had a ball", "The sun was", "One day"].map((prompt, i) => client.completions.create({ ...request, prompt, seed: i, n: 2 }));
  const [batched] = await Promise.all([client.completions.create(request), ...others]);
  assert.equal(batched.choices[0]!.text, alone);
  // Seven choices in flight: the forward passes carried several rows each.
  const steps = server.scheduler.stats.steps - before.steps;
  const rows = server.scheduler.stats.rowSteps - before.rowSteps;
  assert.ok(rows / steps > 3, `mean rows per step ${rows / steps}`);
  assert.ok(steps < 40, `${steps} steps for 7 choices of 30 tokens`);
});

test("more choices than rows: requests wait for free rows, and each gets its own seed's text", async () => {
  const ask = (seed: number) => client.completions.create({ model, prompt: story, max_tokens: 12, n: 4, temperature: 1, seed });
  const together = await Promise.all([ask(1), ask(2), ask(3)]); // 12 choices, 8 rows
  assert.deepEqual(together[2]!.choices.map((c) => c.text), (await ask(3)).choices.map((c) => c.text));
});

test("a request that arrives mid-generation joins the running batch at the next step", async () => {
  const stream = await client.completions.create({ model, prompt: story, max_tokens: 120, temperature: 0.7, seed: 1, stream: true });
  const chunks: OpenAI.Completion[] = [];
  let joined: Promise<{ steps: number; rows: number }> | undefined;
  for await (const chunk of stream) {
    chunks.push(chunk);
    if (chunks.length === 2) {
      const before = { ...server.scheduler.stats };
      joined = client.completions.create({ model, prompt: "Tom", max_tokens: 10, temperature: 0 }).then(() => ({
        steps: server.scheduler.stats.steps - before.steps, rows: server.scheduler.stats.rowSteps - before.rowSteps,
      }));
    }
  }
  assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, "length"); // still running while the second request ran
  const { steps, rows } = await joined!;
  assert.ok(rows >= 2 * (steps - 1), `the second request's steps carried ${rows} rows in ${steps} steps`);
});

test("OpenAI's error shapes: bad key, bad field, unknown argument, unknown model, unknown route, too large", async () => {
  const wrongKey = new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 });
  await assert.rejects(wrongKey.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === "invalid_api_key");
  await assert.rejects(
    client.completions.create({ model, prompt: story, temperature: 5 }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === "temperature" && e.type === "invalid_request_error",
  );
  await assert.rejects(
    client.completions.create({ model, prompt: story, max_tokens: 600 }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === "context_length_exceeded" && e.param === "max_tokens",
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f" } }] }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && /Unrecognized request argument supplied: tools/.test(e.message),
  );
  await assert.rejects(
    client.completions.create({ model: "gpt-4o", prompt: story }),
    (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found",
  );
  const headers = { authorization: `Bearer ${KEY}`, "content-type": "application/json" };
  const route = await fetch(`${baseURL}/embeddings`, { method: "POST", headers, body: "{}" });
  assert.equal(route.status, 404);
  assert.equal(((await route.json()) as { error: { type: string } }).error.type, "invalid_request_error");
  const big = await fetch(`${baseURL}/completions`, { method: "POST", headers, body: JSON.stringify({ model, prompt: "x".repeat(5 * 1024 * 1024) }) });
  assert.equal(big.status, 413);
  assert.ok(((await big.json()) as { error: { message: string } }).error.message.includes("too large"));
  // The key is checked before the body is read: a wrong key with a huge body is a 401, not a 413.
  const unread = await fetch(`${baseURL}/completions`, { method: "POST", headers: { ...headers, authorization: "Bearer nope" }, body: "x".repeat(5 * 1024 * 1024) });
  assert.equal(unread.status, 401);
});

test("chat without a chat template is a 400 that says how to give one", async () => {
  const tok = await resolveTokenizer(server.model);
  const app = buildServeApp({ scheduler: server.scheduler, tokenizer: tok, modelName: model, chatTemplate: null, log: { write() {} } });
  const res = await app.inject({ method: "POST", url: "/v1/chat/completions", payload: { model, messages: [{ role: "user", content: "Hi" }] } });
  assert.equal(res.statusCode, 400);
  const { error } = res.json() as { error: { message: string; code: string } };
  assert.equal(error.code, "chat_template_missing");
  assert.match(error.message, /--chat-template/);
  await app.close();
});

test("a client that disconnects mid-stream leaves the batch; the others and the next request are served", async () => {
  const { other } = await disconnectMidStream(server, client, model, story);
  const next = await client.completions.create({ model, prompt: story, max_tokens: 5, temperature: 0 });
  assert.equal(next.choices[0]!.finish_reason, "length");
  assert.ok((await other).choices[0]!.text.length > 0);
  assert.equal(server.scheduler.activeChoices, 0);
});
