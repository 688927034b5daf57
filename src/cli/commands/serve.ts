import type { Command } from "../command.ts";
import { baseFlag, numberFlag, parseFlags, requireFlag, UsageError } from "../command.ts";
import { rolloutEngineFlag } from "./eval.ts";

const usage = `Usage: rlhf serve --model PATH [--adapter DIR] [--port 8000] [--host 127.0.0.1] [--api-key KEY] [options]

Serves the model over OpenAI's HTTP API: GET /v1/models, POST /v1/completions and
POST /v1/chat/completions (streaming, n, stop, seed, logprobs, usage). Concurrent requests are
decoded together in one batch; a request that arrives mid-generation joins at the next step.
The API key may also come from the RLHF_API_KEY environment variable (kept out of ps listings).
--rollout_engine llama.cpp decodes on llama.cpp instead of the built-in engine (the model exported
once as an f32 GGUF, an F32 KV cache: the same API, greedy text and log-probs within ~1e-5;
llama.cpp's memory lies outside the engine's 4 GiB), on --threads CPU threads.`;

const flags = {
  model: { type: "string", help: "model: a llama2.c .bin file, a Hugging Face directory or a LoRA adapter directory <PATH>" },
  adapter: { type: "string", help: "a LoRA adapter directory to merge into --model <DIR>" },
  ...baseFlag,
  tokenizer: { type: "string", help: "tokenizer file or directory <PATH> (default: found beside or inside the model)" },
  port: { type: "string", default: "8000", help: "port to listen on, 0 = any free one <N>" },
  host: { type: "string", default: "127.0.0.1", help: "address to listen on (0.0.0.0: every interface) <ADDRESS>" },
  "api-key": { type: "string", help: "clients must send Authorization: Bearer KEY <KEY>" },
  "model-name": { type: "string", help: "the model id clients use (default: the model's file or directory name) <NAME>" },
  "chat-template": { type: "string", help: "Jinja chat template file, or 'default' for the template the trainers use when a tokenizer has none (default: the tokenizer's) <FILE>" },
  "max-batch": { type: "string", default: "8", help: "sequences decoded at once (vLLM's max_num_seqs); more wait for a free row <N>" },
  "max-model-len": { type: "string", help: "tokens per sequence, prompt + completion (default: the model's context, at most 2048) <N>" },
  rollout_engine: { type: "string", default: "jax-js", help: "where decoding runs: jax-js (built in) or llama.cpp <ENGINE>" },
  threads: { type: "string", help: "llama.cpp's CPU threads (default: the built-in engine's count, RLHF_THREADS or every core; give 1 on a loaded machine) <N>" },
} as const;

export const command: Command = {
  summary: "serve a model over OpenAI's HTTP API (completions, chat, streaming), batching concurrent requests",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    if (v.adapter !== undefined && v.base !== undefined) throw new UsageError("--adapter takes its base from --model; --base is for an adapter given as --model");
    const port = numberFlag(v.port, "port", 8000, { min: 0, max: 65535, integer: true });
    const maxBatch = numberFlag(v["max-batch"], "max-batch", 8, { min: 1, max: 256, integer: true });
    const maxModelLen = v["max-model-len"] === undefined ? undefined : numberFlag(v["max-model-len"], "max-model-len", 0, { min: 2, integer: true });
    const rolloutEngine = rolloutEngineFlag(v.rollout_engine);
    if (v.threads !== undefined && rolloutEngine !== "llama.cpp") throw new UsageError("--threads is llama.cpp's; the built-in engine's threads come from RLHF_THREADS");
    const threads = v.threads === undefined ? undefined : numberFlag(v.threads, "threads", 1, { min: 1, max: 256, integer: true });
    const { openServer } = await import("../../serve/server.ts");
    const model = requireFlag(v.model, "model");
    process.stderr.write(`loading ${v.adapter ? `${v.adapter} over ${model}` : model}\n`);
    const server = await openServer({
      model, adapter: v.adapter, base: v.base, tokenizer: v.tokenizer, modelName: v["model-name"],
      apiKey: v["api-key"] ?? (process.env.RLHF_API_KEY || undefined), chatTemplate: v["chat-template"], maxBatch, maxModelLen,
      rolloutEngine, threads,
    });
    const host = v.host ?? "127.0.0.1";
    try {
      await server.app.listen({ host, port });
    } catch (e) {
      await server.close();
      throw new UsageError(`cannot listen on ${host}:${port}: ${(e as Error).message}`);
    }
    const bound = server.app.server.address() as { address: string; port: number };
    const where = `${bound.address.includes(":") ? `[${bound.address}]` : bound.address}:${bound.port}`;
    process.stderr.write(`serving ${server.modelName} at http://${where}/v1 (${rolloutEngine}, batch up to ${maxBatch}, ${server.scheduler.contextLength} tokens per sequence)\n`);
    if (!/^(127\.|::1$|localhost$)/.test(bound.address)) {
      process.stderr.write("warning: plain HTTP on a non-loopback address: prompts, answers and the API key travel in clear text; serve behind a TLS proxy\n");
    }
    await new Promise<void>((done) => {
      const stop = () => void server.close().then(done);
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    return 0;
  },
};
