// OpenAI's response and stream-chunk objects for /v1/completions and /v1/chat/completions, built
// from a choice's text, tokens and finish reason.
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { FinishReason, SampledToken } from "./scheduler.ts";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** The endpoint's flavour of every object: completions carry `text`, chat carries `message` / `delta`. */
export interface Shapes {
  /** Sent once per choice before its first token (chat's role delta); null when the endpoint has none. */
  opening(index: number): object | null;
  chunkChoice(index: number, text: string, tokens: SampledToken[], finishReason: FinishReason | null): object;
  choice(index: number, text: string, tokens: SampledToken[], finishReason: FinishReason): object;
  object: string;
  chunkObject: string;
  idPrefix: string;
}

const tokenText = (tok: Tokenizer, id: number) => tok.decode([id]);

/** Legacy completions' logprobs: parallel lists, top alternatives as {token: logprob}. */
function completionLogprobs(tok: Tokenizer, tokens: SampledToken[], offset: number) {
  const strings = tokens.map((t) => tokenText(tok, t.id));
  const textOffset: number[] = [];
  for (const s of strings) {
    textOffset.push(offset);
    offset += s.length;
  }
  return {
    tokens: strings,
    token_logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) => Object.fromEntries(t.top.map((a) => [tokenText(tok, a.id), a.logprob]))),
    text_offset: textOffset,
  };
}

/** Chat's logprobs: one entry per token with its UTF-8 bytes and its top alternatives. */
function chatLogprobs(tok: Tokenizer, tokens: SampledToken[]) {
  const entry = (id: number, logprob: number) => {
    const token = tokenText(tok, id);
    return { token, logprob, bytes: [...Buffer.from(token, "utf8")] };
  };
  return { content: tokens.map((t) => ({ ...entry(t.id, t.logprob), top_logprobs: t.top.map((a) => entry(a.id, a.logprob)) })), refusal: null };
}

export function completionShapes(tok: Tokenizer, withLogprobs: boolean): Shapes {
  const offsets = new Map<number, number>(); // text_offset continues across a stream's chunks
  const logprobs = (index: number, tokens: SampledToken[]) => {
    if (!withLogprobs) return null;
    const out = completionLogprobs(tok, tokens, offsets.get(index) ?? 0);
    offsets.set(index, (offsets.get(index) ?? 0) + out.tokens.join("").length);
    return out;
  };
  return {
    object: "text_completion",
    chunkObject: "text_completion",
    idPrefix: "cmpl-",
    opening: () => null,
    chunkChoice: (index, text, tokens, finishReason) => ({ index, text, logprobs: logprobs(index, tokens), finish_reason: finishReason }),
    choice: (index, text, tokens, finishReason) => ({ index, text, logprobs: logprobs(index, tokens), finish_reason: finishReason }),
  };
}

export function chatShapes(tok: Tokenizer, withLogprobs: boolean): Shapes {
  const logprobs = (tokens: SampledToken[]) => (withLogprobs ? chatLogprobs(tok, tokens) : null);
  return {
    object: "chat.completion",
    chunkObject: "chat.completion.chunk",
    idPrefix: "chatcmpl-",
    opening: (index) => ({ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }),
    chunkChoice: (index, text, tokens, finishReason) => ({
      index, delta: text === "" ? {} : { content: text }, logprobs: logprobs(tokens), finish_reason: finishReason,
    }),
    choice: (index, text, tokens, finishReason) => ({
      index, message: { role: "assistant", content: text, refusal: null }, logprobs: logprobs(tokens), finish_reason: finishReason,
    }),
  };
}
