// Serving throughput: `rlhf serve` in its own process, driven over HTTP by the official openai
// client. One stream alone and S streams at once (S different seeds, batched by the server's
// scheduler), alternating, `--repeats` rounds each; prints the medians of tokens/s in all and per
// stream and of the time to the first token, and the median ratio of S streams' tokens/s to one's. Every stream samples
// (--temperature, 1 by default; 0: greedy) up to --max-tokens; a stream that reaches EOS sooner counts the tokens it got.
//
// --rollout_engine llama.cpp [--threads N] serves on llama.cpp instead of the built-in engine (--threads: llama.cpp's;
// the built-in engine's come from RLHF_THREADS). --rollout_engine jax-js,llama.cpp starts a server on each and
// alternates their rounds too, so both see the same load, and prints the median ratio of their tokens/s.
//
//   npm run bench:serve -- --model ../shared/data/llama2c/stories260K.bin [--streams 8] [--max-tokens 128] [--repeats 5] [--rollout_engine llama.cpp]
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import OpenAI from "openai";

const { values: v } = parseArgs({
  options: {
    model: { type: "string" }, tokenizer: { type: "string" }, streams: { type: "string", default: "8" },
    "max-tokens": { type: "string", default: "128" }, repeats: { type: "string", default: "5" }, prompt: { type: "string", default: "Once upon a time" },
    rollout_engine: { type: "string", default: "jax-js" }, threads: { type: "string" }, temperature: { type: "string", default: "1" },
  },
});
if (!v.model) {
  console.error("usage: npm run bench:serve -- --model PATH [--tokenizer PATH] [--streams 8] [--max-tokens 128] [--repeats 5] [--rollout_engine jax-js|llama.cpp|jax-js,llama.cpp] [--threads N] [--temperature T]");
  process.exit(2);
}
const streams = Number(v.streams);
const maxTokens = Number(v["max-tokens"]);
const repeats = Number(v.repeats);

const engines = v.rollout_engine!.split(",");

interface Served { engine: string; client: OpenAI; stop(): void }

async function startServer(engine: string): Promise<Served> {
  const args = ["bin/rlhf.mjs", "serve", "--model", v.model!, "--port", "0", "--max-batch", String(streams), "--model-name", "m", ...(v.tokenizer ? ["--tokenizer", v.tokenizer] : []),
    "--rollout_engine", engine, ...(v.threads && engine === "llama.cpp" ? ["--threads", v.threads] : [])];
  const server = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  const baseURL = await new Promise<string>((found, failed) => {
    let err = "";
    server.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /serving m at (http:\S+)/.exec(err);
      if (m) found(m[1]!);
    });
    server.once("exit", (code) => failed(new Error(`rlhf serve exited ${code}: ${err}`)));
  });
  return { engine, client: new OpenAI({ baseURL, apiKey: "none", maxRetries: 0 }), stop: () => server.kill("SIGTERM") };
}

interface StreamResult { tokens: number; seconds: number; firstTokenSeconds: number }

async function oneStream(client: OpenAI, seed: number): Promise<StreamResult> {
  const start = performance.now();
  let first = NaN;
  let tokens = 0;
  const stream = await client.completions.create({
    model: "m", prompt: v.prompt!, max_tokens: maxTokens, temperature: Number(v.temperature), seed, stream: true, stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    if (Number.isNaN(first) && chunk.choices[0]?.text) first = performance.now();
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return { tokens, seconds: (performance.now() - start) / 1000, firstTokenSeconds: (first - start) / 1000 };
}

async function round(client: OpenAI, count: number, seed: number) {
  const start = performance.now();
  const results = await Promise.all(Array.from({ length: count }, (_, i) => oneStream(client, seed + i)));
  const wall = (performance.now() - start) / 1000;
  const tokens = results.reduce((s, r) => s + r.tokens, 0);
  return {
    streams: count, tokens, wall,
    aggregate: tokens / wall,
    perStream: results.reduce((s, r) => s + r.tokens / r.seconds, 0) / count,
    firstToken: results.reduce((s, r) => s + r.firstTokenSeconds, 0) / count,
  };
}
type Round = Awaited<ReturnType<typeof round>>;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const servers: Served[] = [];
try {
  for (const engine of engines) servers.push(await startServer(engine));
  // Warm-up: compiles the prefill and the decode step at every batch size the rounds use.
  for (const { client } of servers) {
    await round(client, 1, 1000);
    await round(client, streams, 2000);
  }
  // One stream and S streams (and the engines) alternate, so all see the same load from whatever else runs.
  const runs = servers.map(() => ({ one: [] as Round[], many: [] as Round[] }));
  for (let r = 0; r < repeats; r++) {
    for (const [i, { client }] of servers.entries()) {
      runs[i]!.one.push(await round(client, 1, 100 * r));
      runs[i]!.many.push(await round(client, streams, 100 * r));
    }
  }
  for (const [i, { engine }] of servers.entries()) {
    for (const [count, results] of [[1, runs[i]!.one], [streams, runs[i]!.many]] as const) {
      const m = (f: (x: Round) => number) => median(results.map(f));
      console.log(JSON.stringify({
        model: v.model, rollout_engine: engine, streams: count, max_tokens: maxTokens, temperature: Number(v.temperature), repeats,
        tokens: m((x) => x.tokens), aggregate_tokens_per_s: +m((x) => x.aggregate).toFixed(1), per_stream_tokens_per_s: +m((x) => x.perStream).toFixed(1),
        time_to_first_token_s: +m((x) => x.firstToken).toFixed(3),
      }));
    }
    const ratios = runs[i]!.many.map((x, k) => x.aggregate / runs[i]!.one[k]!.aggregate);
    console.log(JSON.stringify({ rollout_engine: engine, batched_over_single: +median(ratios).toFixed(2), per_round: ratios.map((x) => +x.toFixed(2)) }));
  }
  if (servers.length === 2) {
    for (const kind of ["one", "many"] as const) {
      const ratios = runs[1]![kind].map((x, k) => x.aggregate / runs[0]![kind][k]!.aggregate);
      console.log(JSON.stringify({ streams: kind === "one" ? 1 : streams, [`${engines[1]}_over_${engines[0]}`]: +median(ratios).toFixed(2), per_round: ratios.map((x) => +x.toFixed(2)) }));
    }
  }
} finally {
  for (const s of servers) s.stop();
}
