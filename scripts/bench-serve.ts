// Serving throughput: `rlhf serve` in its own process, driven over HTTP by the official openai
// client. One stream alone and S streams at once (S different seeds, batched by the server's
// scheduler), alternating, `--repeats` rounds each; prints the medians of tokens/s in all and per
// stream and of the time to the first token, and the median ratio of S streams' tokens/s to one's. Every stream samples (temperature 1) up to
// --max-tokens; a stream that reaches EOS sooner counts the tokens it got.
//
//   npm run bench:serve -- --model ../shared/data/llama2c/stories260K.bin [--streams 8] [--max-tokens 128] [--repeats 5]
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import OpenAI from "openai";

const { values: v } = parseArgs({
  options: {
    model: { type: "string" }, tokenizer: { type: "string" }, streams: { type: "string", default: "8" },
    "max-tokens": { type: "string", default: "128" }, repeats: { type: "string", default: "5" }, prompt: { type: "string", default: "Once upon a time" },
  },
});
if (!v.model) {
  console.error("usage: npm run bench:serve -- --model PATH [--tokenizer PATH] [--streams 8] [--max-tokens 128] [--repeats 5]");
  process.exit(2);
}
const streams = Number(v.streams);
const maxTokens = Number(v["max-tokens"]);
const repeats = Number(v.repeats);

const args = ["bin/rlhf.mjs", "serve", "--model", v.model, "--port", "0", "--max-batch", String(streams), "--model-name", "m", ...(v.tokenizer ? ["--tokenizer", v.tokenizer] : [])];
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
const client = new OpenAI({ baseURL, apiKey: "none", maxRetries: 0 });

interface StreamResult { tokens: number; seconds: number; firstTokenSeconds: number }

async function oneStream(seed: number): Promise<StreamResult> {
  const start = performance.now();
  let first = NaN;
  let tokens = 0;
  const stream = await client.completions.create({
    model: "m", prompt: v.prompt!, max_tokens: maxTokens, temperature: 1, seed, stream: true, stream_options: { include_usage: true },
  });
  for await (const chunk of stream) {
    if (Number.isNaN(first) && chunk.choices[0]?.text) first = performance.now();
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  return { tokens, seconds: (performance.now() - start) / 1000, firstTokenSeconds: (first - start) / 1000 };
}

async function round(count: number, seed: number) {
  const start = performance.now();
  const results = await Promise.all(Array.from({ length: count }, (_, i) => oneStream(seed + i)));
  const wall = (performance.now() - start) / 1000;
  const tokens = results.reduce((s, r) => s + r.tokens, 0);
  return {
    streams: count, tokens, wall,
    aggregate: tokens / wall,
    perStream: results.reduce((s, r) => s + r.tokens / r.seconds, 0) / count,
    firstToken: results.reduce((s, r) => s + r.firstTokenSeconds, 0) / count,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  // Warm-up: compiles the prefill and the decode step at every batch size the rounds use.
  await round(1, 1000);
  await round(streams, 2000);
  // One stream and S streams alternate, so both see the same load from whatever else runs.
  const runs = { one: [] as Awaited<ReturnType<typeof round>>[], many: [] as Awaited<ReturnType<typeof round>>[] };
  for (let r = 0; r < repeats; r++) {
    runs.one.push(await round(1, 100 * r));
    runs.many.push(await round(streams, 100 * r));
  }
  for (const [count, results] of [[1, runs.one], [streams, runs.many]] as const) {
    const m = (f: (x: (typeof results)[number]) => number) => median(results.map(f));
    console.log(JSON.stringify({
      model: v.model, streams: count, max_tokens: maxTokens, repeats,
      tokens: m((x) => x.tokens), aggregate_tokens_per_s: +m((x) => x.aggregate).toFixed(1), per_stream_tokens_per_s: +m((x) => x.perStream).toFixed(1),
      time_to_first_token_s: +m((x) => x.firstToken).toFixed(3),
    }));
  }
  const ratios = runs.many.map((x, i) => x.aggregate / runs.one[i]!.aggregate);
  console.log(JSON.stringify({ batched_over_single: +median(ratios).toFixed(2), per_round: ratios.map((x) => +x.toFixed(2)) }));
} finally {
  server.kill("SIGTERM");
}
