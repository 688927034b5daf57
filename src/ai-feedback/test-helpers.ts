// A fake OpenAI-compatible server for the AI feedback tests: POST /v1/chat/completions answered by
// a handler the test sets, with every request body kept and the most requests in flight counted;
// and the rlhf CLI run as a child process without blocking the server's event loop.
import { spawn } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { after, before } from "node:test";
import { RLHF_BIN } from "../cli/test-helpers.ts";

export interface ChatBody {
  model: string;
  messages: { role: string; content: string }[];
  temperature: number;
  max_tokens: number;
  seed?: number;
}

export type Handler = (body: ChatBody, res: ServerResponse) => void | Promise<void>;

export interface FakeServer {
  baseUrl: string;
  requests: ChatBody[];
  maxInFlight: number;
  /** Answers later requests with `handler` and forgets the requests so far. */
  reset(handler: Handler): void;
}

/** Starts the server before the file's tests and closes it after them. */
export function fakeOpenAiServer(): FakeServer {
  let handler: Handler = () => {};
  let inFlight = 0;
  const state: FakeServer = { baseUrl: "", requests: [], maxInFlight: 0, reset: (h) => { handler = h; state.requests = []; state.maxInFlight = 0; } };
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
      res.writeHead(404).end(JSON.stringify({ error: { message: `no route ${req.url}` } }));
      return;
    }
    const body = JSON.parse(raw) as ChatBody;
    state.requests.push(body);
    state.maxInFlight = Math.max(state.maxInFlight, ++inFlight);
    try {
      await handler(body, res);
    } finally {
      inFlight--;
    }
  });
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    state.baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`;
  });
  after(() => server.close());
  return state;
}

/** A chat completion in OpenAI's shape. */
export function reply(res: ServerResponse, content: string): void {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ id: "x", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }] }));
}

export function runRlhfAsync(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RLHF_BIN, ...args], { env: { ...process.env, ...env } });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

export const readJsonl = (text: string) => text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
