// `rlhf serve --rollout_engine llama.cpp` against the built-in engine on tinystories-656k, both
// servers in-process, driven by the official `openai` client: the same requests give the same
// greedy tokens and (seeded) the same samples, log-probs within 1e-4, and streaming, stop strings,
// n, a request joining mid-generation and a client disconnecting behave as on jax-js.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { sharedData } from "../io/test-helpers.ts";
import { openServer, type ModelServer } from "./server.ts";
import { disconnectMidStream } from "./test-helpers.ts";

const MODEL = sharedData("tinystories-656k");
const model = "tinystories-656k";
const story = "Once upon a time";
// llama.cpp with an F32 cache computes the same float32 model in another order of sums: its
// log-probs were measured within 1e-5 of jax-js's (whose own batch padding moves them by ~1e-5);
// 1e-4 leaves room for that and still fails on any real difference (a wrong position, mask or cache).
const LOGPROB_TOLERANCE = 1e-4;

const servers = {} as Record<"jax" | "llama", { server: ModelServer; client: OpenAI }>;

async function start(rolloutEngine: "jax-js" | "llama.cpp"): Promise<{ server: ModelServer; client: OpenAI }> {
  // One llama.cpp thread: on a loaded machine two stall each other (10x slower steps measured).
  const server = await openServer({ model: MODEL, rolloutEngine, threads: 1, maxBatch: 8, log: { write() {} } });
  await server.app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = server.app.server.address() as { port: number };
  return { server, client: new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "none", maxRetries: 0 }) };
}

before(async () => {
  servers.jax = await start("jax-js");
  servers.llama = await start("llama.cpp");
});
after(async () => {
  await servers.llama?.server.close();
  await servers.jax?.server.close();
});

/** The same request to both servers. */
async function both<T>(ask: (client: OpenAI) => Promise<T>): Promise<{ jax: T; llama: T }> {
  return { jax: await ask(servers.jax.client), llama: await ask(servers.llama.client) };
}

test("greedy: token for token jax-js's, log-probs and top log-probs within 1e-4, batched prompts alike", async () => {
  const prompts = [story, "Tom and his dog", "The sun was hot and", "Lily"];
  const { jax, llama } = await both((c) => c.completions.create({ model, prompt: prompts, max_tokens: 48, temperature: 0, logprobs: 5 }));
  let largest = 0;
  jax.choices.forEach((ours, i) => {
    const theirs = llama.choices[i]!;
    assert.equal(theirs.index, ours.index);
    assert.deepEqual(theirs.logprobs!.tokens, ours.logprobs!.tokens, `prompt ${i}`);
    assert.equal(theirs.text, ours.text);
    assert.equal(theirs.finish_reason, ours.finish_reason);
    ours.logprobs!.token_logprobs!.forEach((lp, k) => (largest = Math.max(largest, Math.abs(lp - theirs.logprobs!.token_logprobs![k]!))));
    ours.logprobs!.top_logprobs!.forEach((top, k) => {
      const other = theirs.logprobs!.top_logprobs![k]!;
      for (const [token, lp] of Object.entries(top!)) {
        // A near tie among the lower alternatives may order them differently: compare by token where both have it.
        if (token in other) largest = Math.max(largest, Math.abs(lp - other[token]!));
      }
      assert.ok(Object.keys(other).filter((t) => t in top!).length >= 4, `token ${k}: top-5 sets differ`);
    });
  });
  console.log(`largest |log-prob difference|, llama.cpp vs jax-js: ${largest.toExponential(2)}`);
  assert.ok(largest < LOGPROB_TOLERANCE, `log-probs differ by ${largest}`);
  assert.deepEqual(llama.usage, jax.usage);
});

/** A seeded n-choice request's texts on llama.cpp, checked distinct, the same when asked again and when streamed. */
async function seededTexts(request: OpenAI.CompletionCreateParamsNonStreaming): Promise<string[]> {
  const { client } = servers.llama;
  const texts = (await client.completions.create(request)).choices.map((c) => c.text);
  assert.ok(new Set(texts).size > 1, "samples at temperature 1 should not all agree");
  assert.deepEqual((await client.completions.create(request)).choices.map((c) => c.text), texts);
  const streamed = texts.map(() => "");
  for await (const chunk of await client.completions.create({ ...request, stream: true })) for (const c of chunk.choices) streamed[c.index] += c.text;
  assert.deepEqual(streamed, texts);
  return texts;
}

test("n choices from one seed, with log-probs: jax-js's samples, distinct, the same again; streaming gives the same text", async () => {
  // Asking for log-probs brings the full logits into JS, where each choice samples from its own
  // seeded stream: on the same logits (to ~1e-5) it draws jax-js's tokens.
  const request = { model, prompt: story, max_tokens: 24, n: 3, temperature: 1, top_p: 0.95, seed: 42, logprobs: 0 };
  const jax = await servers.jax.client.completions.create(request);
  assert.deepEqual(await seededTexts(request), jax.choices.map((c) => c.text));
});

test("n choices from one seed, without log-probs: drawn by llama.cpp's sampler with the request's settings, distinct, the same again and streamed alike", async () => {
  const request = { model, prompt: story, max_tokens: 24, n: 3, temperature: 1, top_p: 1, seed: 42 };
  const drawn = await seededTexts(request);
  const otherSeed = await servers.llama.client.completions.create({ ...request, seed: 43 });
  assert.notDeepEqual(otherSeed.choices.map((c) => c.text), drawn);
  // top_p reaches llama.cpp's sampler (not node-llama-cpp's default 0.95): a nucleus of the most
  // likely token alone draws the greedy text at temperature 1.
  const greedy = (await servers.llama.client.completions.create({ model, prompt: story, max_tokens: 24, temperature: 0 })).choices[0]!.text;
  const nucleus = await servers.llama.client.completions.create({ ...request, top_p: 1e-6 });
  assert.deepEqual(nucleus.choices.map((c) => c.text), [greedy, greedy, greedy]);
});

test("stop strings cut the text before the stop, as on jax-js", async () => {
  const full = (await servers.llama.client.completions.create({ model, prompt: story, max_tokens: 40, temperature: 0 })).choices[0]!.text;
  const stop = [" Lily", "zzz"];
  assert.ok(full.includes(" Lily"), full);
  const { jax, llama } = await both((c) => c.completions.create({ model, prompt: story, max_tokens: 40, temperature: 0, stop }));
  assert.equal(llama.choices[0]!.text, full.slice(0, full.indexOf(" Lily")));
  assert.equal(llama.choices[0]!.finish_reason, "stop");
  assert.deepEqual(llama.choices, jax.choices);
});

test("a request that arrives mid-generation joins the running llama.cpp batch and gets its own greedy text", async () => {
  const { server, client } = servers.llama;
  const alone = (await client.completions.create({ model, prompt: "Tom", max_tokens: 10, temperature: 0 })).choices[0]!.text;
  const stream = await client.completions.create({ model, prompt: story, max_tokens: 120, temperature: 0.7, seed: 1, stream: true });
  let chunks = 0;
  let joined: Promise<{ text: string; steps: number; rows: number }> | undefined;
  let joinedFinished = false;
  for await (const _ of stream) {
    if (++chunks === 2) {
      const before = { ...server.scheduler.stats };
      joined = client.completions.create({ model, prompt: "Tom", max_tokens: 10, temperature: 0 }).then((r) => {
        joinedFinished = true;
        return { text: r.choices[0]!.text, steps: server.scheduler.stats.steps - before.steps, rows: server.scheduler.stats.rowSteps - before.rowSteps };
      });
    }
  }
  assert.ok(joinedFinished, "the first stream ended before the second request was served");
  const { text, steps, rows } = await joined!;
  assert.equal(text, alone, "a row reused from another sequence kept some of its cache");
  assert.ok(rows >= 2 * (steps - 1), `the second request's steps carried ${rows} rows in ${steps} steps`);
});

test("a client that disconnects mid-stream frees its llama.cpp row; the others and the next request are served", async () => {
  const { server, client } = servers.llama;
  const { other } = await disconnectMidStream(server, client, model, story);
  // Every row taken by greedy requests at once: the freed sequence is among them and reads its prompt afresh.
  const prompts = Array.from({ length: 8 }, (_, i) => `${story} ${"there was a cat ".repeat(i % 3)}`.trim());
  const { jax, llama } = await both((c) => c.completions.create({ model, prompt: prompts, max_tokens: 12, temperature: 0 }));
  assert.deepEqual(llama.choices.map((c) => c.text), jax.choices.map((c) => c.text));
  assert.ok((await other).choices[0]!.text.length > 0);
  assert.equal(server.scheduler.activeChoices, 0);
});

test("stories260K (a llama2.c file): llama.cpp's greedy text is jax-js's, log-probs within 1e-4", async () => {
  const ask = async (rolloutEngine: "jax-js" | "llama.cpp") => {
    const server = await openServer({ model: sharedData("llama2c/stories260K.bin"), rolloutEngine, threads: 1, log: { write() {} } });
    try {
      const res = await server.app.inject({ method: "POST", url: "/v1/completions", payload: { model: "stories260K", prompt: [story, "The little dog"], max_tokens: 40, temperature: 0, logprobs: 1 } });
      return (res.json() as OpenAI.Completion).choices;
    } finally {
      await server.close();
    }
  };
  const [jax, llama] = [await ask("jax-js"), await ask("llama.cpp")];
  assert.deepEqual(llama.map((c) => c.logprobs!.tokens), jax.map((c) => c.logprobs!.tokens));
  const largest = Math.max(...jax.flatMap((c, i) => c.logprobs!.token_logprobs!.map((lp, k) => Math.abs(lp - llama[i]!.logprobs!.token_logprobs![k]!))));
  assert.ok(largest < LOGPROB_TOLERANCE, `log-probs differ by ${largest}`);
});

test("a tokenizer smaller than the model's vocabulary: llama.cpp's greedy tokens are jax-js's, never a row no text maps to", async () => {
  // tinystories-656k's 2,048 logits read through stories260K's 512-token vocabulary.
  const ask = async (rolloutEngine: "jax-js" | "llama.cpp") => {
    const server = await openServer({ model: MODEL, tokenizer: sharedData("llama2c/tok512.bin"), rolloutEngine, threads: 1, log: { write() {} } });
    try {
      const res = await server.app.inject({ method: "POST", url: "/v1/completions", payload: { model, prompt: [[1, 400, 300], [1, 30, 20, 10]], max_tokens: 24, temperature: 0 } });
      return (res.json() as OpenAI.Completion).choices.map((c) => c.text);
    } finally {
      await server.close();
    }
  };
  const [jax, llama] = [await ask("jax-js"), await ask("llama.cpp")];
  assert.ok(jax.every((t) => t.length > 0), "the jax-js server wrote nothing");
  assert.deepEqual(llama, jax);
});
