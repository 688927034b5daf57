// OpenAI's chat completions over plain fetch (no SDK at runtime): POST {base}/chat/completions
// with {model, messages, temperature, max_tokens, seed}, the answer read from
// choices[0].message.content. Any OpenAI-compatible server answers it (vLLM, SGLang, Ollama,
// llama.cpp's server, a hosted API, rlhf serve). 429, 5xx, timeouts and network errors are
// retryable; a 400 context_length_exceeded fails the one request (ItemFailure); other 4xx (a
// wrong key, an unknown model) are the user's to fix and stop the run.
import { InputError } from "../io/errors.ts";
import type { ChatMessage } from "../tokenizers/chat.ts";
import { ItemFailure } from "./item-failure.ts";
import { RetryableError } from "./retry.ts";

/** The server refused the request itself (401, 404...): retrying cannot help. */
export class ChatEndpointError extends InputError {}

export interface ChatEndpoint {
  /** e.g. http://127.0.0.1:8000/v1 */
  baseUrl: string;
  model: string;
  apiKey: string | null;
  timeoutMs: number;
}

export interface ChatRequest {
  messages: ChatMessage[];
  temperature: number;
  max_tokens: number;
  seed?: number;
}

export const isHttpSource = (src: string) => /^https?:\/\//i.test(src);

function retryAfterMs(header: string | null): number | null {
  if (header === null) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** One attempt; throws RetryableError for what another attempt may fix, ChatEndpointError for what it cannot. */
export async function chatCompletion(endpoint: ChatEndpoint, request: ChatRequest): Promise<string> {
  const url = `${endpoint.baseUrl.replace(/\/+$/, "")}/chat/completions`;
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(endpoint.apiKey ? { authorization: `Bearer ${endpoint.apiKey}` } : {}) },
      body: JSON.stringify({ model: endpoint.model, ...request }),
      signal: AbortSignal.timeout(endpoint.timeoutMs),
    });
    text = await response.text();
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    throw new RetryableError(`${url}: ${e.name === "TimeoutError" ? `no answer in ${endpoint.timeoutMs} ms` : `${e.message}${e.cause?.code ? ` (${e.cause.code})` : ""}`}`);
  }
  if (!response.ok) {
    const { message: detail, code } = errorOf(text);
    const message = `${url}: HTTP ${response.status}${detail ? ` (${detail})` : ""}`;
    if (response.status === 429 || response.status >= 500) throw new RetryableError(message, retryAfterMs(response.headers.get("retry-after")));
    // This conversation is too long for the model; the next one may fit.
    if (code === "context_length_exceeded") throw new ItemFailure(`${message}; a smaller --max-tokens may fit`);
    const hint = response.status === 401 || response.status === 403 ? "; check --api-key or OPENAI_API_KEY" : response.status === 404 ? "; check the URL (it ends in /v1) and --judge-model" : "";
    throw new ChatEndpointError(`${message}${hint}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new RetryableError(`${url}: the answer is not JSON (${JSON.stringify(text.slice(0, 80))})`);
  }
  const content = (body as { choices?: { message?: { content?: unknown } }[] })?.choices?.[0]?.message?.content;
  if (typeof content !== "string") throw new RetryableError(`${url}: the answer has no choices[0].message.content string`);
  return content;
}

/** OpenAI's error shape {"error": {"message", "code"}}, or the start of whatever else came back. */
function errorOf(text: string): { message: string; code: string | null } {
  try {
    const error = (JSON.parse(text) as { error?: { message?: unknown; code?: unknown } })?.error;
    if (typeof error?.message === "string") return { message: error.message, code: typeof error.code === "string" ? error.code : null };
  } catch { /* not JSON: show the text */ }
  return { message: text.slice(0, 200).trim(), code: null };
}
