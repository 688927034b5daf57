// DPO's data: preference pairs with the prompt split from the two completions, since DPO scores
// only completion tokens. TRL's formats:
//   explicit prompt  {"prompt", "chosen", "rejected"}: strings, or lists of {role, content} messages
//                    (the prompt rendered with the chat template and its generation prompt, each
//                    completion as the text the template adds after it);
//   implicit prompt  {"chosen", "rejected"}: the shared beginning is the prompt (for text the longest
//                    common prefix, for messages the common leading messages);
// and the rt-polarity folder (line i of rt-polarity.pos chosen over line i of rt-polarity.neg, empty
// prompt). Completions end in EOS, as TRL appends it, except one the record marks as cut off
// (`chosen_truncated` / `rejected_truncated`: true, as `rlhf pairs` writes for a completion that hit
// max_new_tokens): an unfinished text gets no end-of-sequence token to learn from.
import { existsSync, statSync } from "node:fs";
import { applyChatTemplate, type ChatMessage } from "../tokenizers/chat.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { readRecords } from "./datasets.ts";
import { DataError } from "./formats.ts";
import { readRtPolarity } from "./rt-polarity.ts";

/** One preference pair as token ids; the model reads prompt ++ chosen and prompt ++ rejected. */
export interface DpoExample {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

type Json = Record<string, unknown>;

const isMessages = (v: unknown): v is ChatMessage[] => Array.isArray(v) && v.every((m) => typeof (m as Json)?.role === "string" && typeof (m as Json)?.content === "string");

/**
 * TRL's implicit prompt for text: the longest common prefix, moved back one character when it ends
 * in a space so that each completion starts with its space (as tokenizers with leading-space
 * tokens expect).
 */
export function splitCommonPrefix(chosen: string, rejected: string): { prompt: string; chosen: string; rejected: string } {
  let i = 0;
  while (i < chosen.length && i < rejected.length && chosen[i] === rejected[i]) i++;
  if (i < Math.min(chosen.length, rejected.length) && i > 0 && chosen[i - 1] === " ") i--;
  return { prompt: chosen.slice(0, i), chosen: chosen.slice(i), rejected: rejected.slice(i) };
}

/** The common leading messages of two conversations are the prompt. */
export function splitCommonMessages(chosen: ChatMessage[], rejected: ChatMessage[]): { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] } {
  let i = 0;
  while (i < chosen.length && i < rejected.length && chosen[i]!.role === rejected[i]!.role && chosen[i]!.content === rejected[i]!.content) i++;
  return { prompt: chosen.slice(0, i), chosen: chosen.slice(i), rejected: rejected.slice(i) };
}

/**
 * Token ids of a prompt and its completions. Each completion is the tail of prompt + completion
 * tokenized whole when the prompt's own tokens are a prefix of it (merges across the boundary stay
 * natural), else tokenized apart; either way chosen and rejected share the same prompt ids.
 */
function encodePair(tok: Tokenizer, prompt: string, chosen: string, rejected: string, cut: Truncation = {}): DpoExample {
  const promptIds = tok.encode(prompt);
  const completion = (text: string, truncated: boolean) => {
    const whole = tok.encode(prompt + text);
    const ids = promptIds.every((id, i) => whole[i] === id) ? whole.slice(promptIds.length) : tok.encode(text, { addSpecialTokens: false });
    return tok.eosTokenId !== null && !truncated ? [...ids, tok.eosTokenId] : ids;
  };
  return { prompt: promptIds, chosen: completion(chosen, cut.chosen ?? false), rejected: completion(rejected, cut.rejected ?? false) };
}

/** Which completions of a pair were cut off unfinished (they get no EOS). */
interface Truncation {
  chosen?: boolean;
  rejected?: boolean;
}

/** A record's `chosen_truncated` / `rejected_truncated` flags (absent = the completion ended). */
function truncationOf(record: Json, where: string): Truncation {
  const flag = (field: string) => {
    const v = record[field];
    if (v !== undefined && typeof v !== "boolean") throw new DataError(`${where}: "${field}" must be true or false, got ${JSON.stringify(v)}`);
    return v === true;
  };
  return { chosen: flag("chosen_truncated"), rejected: flag("rejected_truncated") };
}

/** Chat prompt and completions as text: the prompt with the generation prompt, each completion as what the template adds after it. */
function renderChat(tok: Tokenizer, prompt: ChatMessage[], chosen: ChatMessage[], rejected: ChatMessage[], where: string): { prompt: string; chosen: string; rejected: string } {
  const promptText = prompt.length === 0 ? "" : applyChatTemplate(tok, prompt, { addGenerationPrompt: chosen[0]?.role === "assistant" });
  const completion = (messages: ChatMessage[], field: string) => {
    const whole = applyChatTemplate(tok, [...prompt, ...messages]);
    if (!whole.startsWith(promptText)) throw new DataError(`${where}: the chat template does not render the prompt as the start of prompt + "${field}"; cannot split them`);
    return whole.slice(promptText.length);
  };
  return { prompt: promptText, chosen: completion(chosen, "chosen"), rejected: completion(rejected, "rejected") };
}

/** One record → a DPO pair; errors name the record (file:line) and the field. */
export function renderDpo(record: Json, tok: Tokenizer, where: string): DpoExample {
  const { prompt, chosen, rejected } = record;
  if (chosen === undefined || rejected === undefined) {
    throw new DataError(`${where}: not a DPO record (expected "chosen" and "rejected", with an optional "prompt"); missing "${chosen === undefined ? "chosen" : "rejected"}"`);
  }
  const conversational = isMessages(chosen);
  for (const [field, value] of [["chosen", chosen], ["rejected", rejected], ...(prompt !== undefined ? [["prompt", prompt]] : [])] as const) {
    if (conversational ? !isMessages(value) : typeof value !== "string") {
      throw new DataError(`${where}: "${field}" must be ${conversational ? "a list of {role, content} messages, as \"chosen\" is" : "a string (or every field a list of {role, content} messages)"}`);
    }
  }
  if (!conversational) {
    const split = prompt === undefined ? splitCommonPrefix(chosen as string, rejected as string) : { prompt: prompt as string, chosen: chosen as string, rejected: rejected as string };
    return encodePair(tok, split.prompt, split.chosen, split.rejected, truncationOf(record, where));
  }
  const split = prompt === undefined ? splitCommonMessages(chosen as ChatMessage[], rejected as ChatMessage[]) : { prompt: prompt as ChatMessage[], chosen: chosen as ChatMessage[], rejected: rejected as ChatMessage[] };
  const text = renderChat(tok, split.prompt, split.chosen, split.rejected, where);
  return encodePair(tok, text.prompt, text.chosen, text.rejected, truncationOf(record, where));
}

/** DPO pairs from a JSON-lines / JSON file, or from the rt-polarity folder (positive over negative, empty prompt). */
export function readDpoData(path: string, tok: Tokenizer): DpoExample[] {
  if (existsSync(path) && statSync(path).isDirectory()) {
    return readRtPolarity(path).pairs.map((p) => encodePair(tok, "", p.chosen, p.rejected));
  }
  return readRecords(path).map(({ record, where }) => renderDpo(record, tok, where));
}

export interface DpoLengths {
  max_length: number;
  max_prompt_length: number | null;
  max_completion_length: number | null;
}

/**
 * Cuts a pair to fit: the prompt from the left to max_prompt_length (and to max_length − 1, so a
 * completion token always remains), each completion from the right to max_completion_length and
 * then to what max_length leaves after the prompt. `truncated` says whether anything was cut.
 */
export function fitDpoExample(e: DpoExample, limits: DpoLengths): { example: DpoExample; truncated: boolean } {
  const promptRoom = Math.min(limits.max_prompt_length ?? Infinity, limits.max_length - 1);
  const prompt = e.prompt.length > promptRoom ? e.prompt.slice(e.prompt.length - promptRoom) : e.prompt;
  const completionRoom = Math.min(limits.max_completion_length ?? Infinity, limits.max_length - prompt.length);
  const example = { prompt, chosen: e.chosen.slice(0, completionRoom), rejected: e.rejected.slice(0, completionRoom) };
  const truncated = prompt.length < e.prompt.length || example.chosen.length < e.chosen.length || example.rejected.length < e.rejected.length;
  return { example, truncated };
}
