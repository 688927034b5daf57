// `rlhf serve`'s HTTP server: OpenAI's /v1/models, /v1/completions and /v1/chat/completions over one
// scheduler. The API key is checked, and the declared body size refused when too large, before a
// byte of the body is read (as the feedback server does); bodies are parsed by serve/schema.ts.
import { createHash, randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import type { z } from "zod";
import { closeSlowHeaders, DEFAULT_LIMITS, type ConnectionLimits } from "../feedback/server/app.ts";
import { declaredBodyBytes } from "../feedback/server/route.ts";
import { applyChatTemplate, type ChatMessage } from "../tokenizers/chat.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { ApiError, invalidBody } from "./errors.ts";
import { respond, type Job } from "./respond.ts";
import type { Scheduler } from "./scheduler.ts";
import { ChatCompletionRequest, CompletionRequest, stopList } from "./schema.ts";
import { chatShapes, completionShapes } from "./shapes.ts";

export interface ServeAppOptions {
  scheduler: Scheduler;
  tokenizer: Tokenizer;
  /** The id clients name in `model` (and /v1/models lists). */
  modelName: string;
  /** Clients must send `Authorization: Bearer KEY`; none: no key is asked. */
  apiKey?: string | undefined;
  /** The Jinja chat template; null refuses chat requests with a 400 that says how to give one. */
  chatTemplate: string | null;
  /** Where the JSON log lines go (default stderr): every 5xx, with its cause and request id. */
  log?: { write(line: string): void };
  limits?: Partial<ConnectionLimits>;
}

const BODY_LIMIT = 4 * 1024 * 1024;
// A non-streamed answer from a large model can take minutes with the socket silent meanwhile.
const SERVE_LIMITS: ConnectionLimits = { ...DEFAULT_LIMITS, connectionTimeout: 30 * 60_000 };

export function buildServeApp(opts: ServeAppOptions): FastifyInstance {
  const { scheduler, tokenizer, modelName } = opts;
  const limits = { ...SERVE_LIMITS, ...opts.limits };
  const app = Fastify({
    connectionTimeout: limits.connectionTimeout, keepAliveTimeout: limits.keepAliveTimeout, requestTimeout: limits.requestTimeout,
    http: { headersTimeout: limits.headersTimeout, connectionsCheckingInterval: Math.min(1000, limits.headersTimeout) },
    bodyLimit: BODY_LIMIT,
    genReqId: () => randomBytes(6).toString("base64url"),
    logger: { level: "warn", stream: opts.log ?? process.stderr },
  });
  app.server.maxConnections = limits.maxConnections;
  closeSlowHeaders(app.server, "connection", limits.headersTimeout);
  const keyHash = opts.apiKey === undefined ? null : sha256(opts.apiKey);
  const created = Math.floor(Date.now() / 1000);

  app.addHook("onRequest", async (req, reply) => {
    reply.header("x-request-id", req.id);
    if (keyHash && req.url.startsWith("/v1/")) checkKey(req, keyHash);
    if (declaredBodyBytes(req) > (req.method === "POST" ? BODY_LIMIT : 0)) {
      reply.header("connection", "close"); // refused before its body was read: do not read the rest
      throw new ApiError(413, `Request body too large: at most ${BODY_LIMIT} bytes`);
    }
  });
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send(err.body);
    const status = (err as { statusCode?: number }).statusCode;
    // Fastify's own client errors: malformed JSON (400), body too large (413), unsupported media type (415).
    if (status && status >= 400 && status < 500) return reply.code(status).send(new ApiError(status, (err as Error).message).body);
    req.log.error({ err, method: req.method, url: req.url }, "request failed");
    return reply.code(500).send(new ApiError(500, `internal server error (request ${req.id})`).body);
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(new ApiError(404, `Invalid URL (${req.method} ${req.url.split("?")[0]})`).body));

  const modelObject = { id: modelName, object: "model", created, owned_by: "rlhf" };
  app.get("/health", async () => ({ ok: true }));
  app.get("/v1/models", async () => ({ object: "list", data: [modelObject] }));
  app.get<{ Params: { model: string } }>("/v1/models/:model", async (req) => {
    checkModel(req.params.model, modelName);
    return modelObject;
  });

  app.post("/v1/completions", async (req, reply) => {
    const body = parse(CompletionRequest, req.body);
    checkModel(body.model, modelName);
    const prompts = promptsOf(body.prompt, tokenizer);
    const job = jobOf(body, prompts, body.max_tokens ?? null, DEFAULT_COMPLETION_TOKENS, body.logprobs ?? null, "prompt", scheduler, modelName);
    return respond(scheduler, job, completionShapes(tokenizer, job.topLogprobs !== null), req, reply);
  });

  app.post("/v1/chat/completions", async (req, reply) => {
    const body = parse(ChatCompletionRequest, req.body);
    checkModel(body.model, modelName);
    if (opts.chatTemplate === null) {
      throw new ApiError(400, "This model has no chat template (its tokenizer_config.json has no chat_template): start rlhf serve with --chat-template FILE " +
        "(or --chat-template default, the template the project's trainers use for such models), or use /v1/completions", "messages", "chat_template_missing");
    }
    const messages: ChatMessage[] = body.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: typeof m.content === "string" ? m.content : (m.content ?? []).map((p) => p.text).join(""),
    }));
    // Encoded as the trainers encode a templated prompt (tokenizers/chat.ts's promptText), so a
    // model fine-tuned here is served the prompts it learned from.
    const text = applyChatTemplate(tokenizer, messages, { addGenerationPrompt: true, template: opts.chatTemplate });
    const prompts = [tokenizer.encode(text)];
    const topLogprobs = body.logprobs ? (body.top_logprobs ?? 0) : null;
    const job = jobOf(body, prompts, body.max_completion_tokens ?? body.max_tokens ?? null, null, topLogprobs, "messages", scheduler, modelName);
    return respond(scheduler, job, chatShapes(tokenizer, topLogprobs !== null), req, reply);
  });
  return app;
}

// OpenAI's default for the legacy completions endpoint; chat defaults to the rest of the context.
const DEFAULT_COMPLETION_TOKENS = 16;

function parse<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) throw invalidBody(r.error);
  return r.data;
}

const sha256 = (s: string) => createHash("sha256").update(s).digest();

function checkKey(req: FastifyRequest, keyHash: Buffer): void {
  const header = req.headers.authorization;
  if (!header) {
    throw new ApiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", null, "invalid_api_key");
  }
  const given = /^Bearer (.+)$/i.exec(header)?.[1] ?? "";
  // Hashes first: timingSafeEqual needs equal lengths, and this way the key's length does not leak either.
  if (!timingSafeEqual(sha256(given), keyHash)) throw new ApiError(401, "Incorrect API key provided.", null, "invalid_api_key");
}

function checkModel(requested: string, served: string): void {
  if (requested !== served) throw new ApiError(404, `The model \`${requested}\` does not exist or you do not have access to it.`, "model", "model_not_found");
}

/** Completions' prompt: text (BOS added as the tokenizer's config says), a list of texts, token ids, or lists of them. */
function promptsOf(prompt: CompletionRequest["prompt"], tok: Tokenizer): number[][] {
  const list: (string | number[])[] = typeof prompt === "string" ? [prompt] : typeof prompt[0] === "number" ? [prompt as number[]] : (prompt as (string | number[])[]);
  return list.map((p) => {
    if (typeof p !== "string") {
      const bad = p.find((id) => id >= tok.vocabSize);
      if (bad !== undefined) throw new ApiError(400, `prompt: token id ${bad} is outside the vocabulary of ${tok.vocabSize} tokens`, "prompt");
      return p;
    }
    const ids = tok.encode(p);
    if (ids.length > 0) return ids;
    if (tok.bosTokenId === null) throw new ApiError(400, "prompt: an empty prompt needs a tokenizer with a BOS token", "prompt");
    return [tok.bosTokenId];
  });
}

type SamplingBody = Pick<CompletionRequest, "n" | "temperature" | "top_p" | "seed" | "stop" | "stream" | "stream_options">;

/**
 * The request as the scheduler runs it, with OpenAI's defaults. A prompt or a max_tokens that
 * does not fit the context is a 400 as OpenAI words it; a default length is cut to fit instead.
 */
function jobOf(
  body: SamplingBody, prompts: number[][], maxTokens: number | null, defaultTokens: number | null, topLogprobs: number | null,
  promptParam: string, scheduler: Scheduler, model: string,
): Job {
  const context = scheduler.contextLength;
  const longest = Math.max(...prompts.map((p) => p.length));
  if (longest >= context) {
    throw new ApiError(400, `This model's maximum context length is ${context} tokens. However, your prompt has ${longest} tokens.`, promptParam, "context_length_exceeded");
  }
  if (maxTokens !== null && longest + maxTokens > context) {
    throw new ApiError(400, `This model's maximum context length is ${context} tokens. However, you requested ${longest + maxTokens} tokens ` +
      `(${longest} in the prompt, ${maxTokens} in the completion). Please reduce the prompt or the completion length.`, "max_tokens", "context_length_exceeded");
  }
  const n = body.n ?? 1;
  if (n > scheduler.maxRows) throw new ApiError(400, `n: at most ${scheduler.maxRows} choices per request (the server's --max-batch)`, "n");
  return {
    prompts, n, model, topLogprobs,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    seed: body.seed ?? randomInt(2 ** 32),
    maxTokens: maxTokens ?? Math.min(defaultTokens ?? Infinity, context - longest),
    stop: stopList(body.stop),
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
  };
}
