// Reading and rendering the trainers' data: JSON lines (optionally gzipped) in TRL's dataset
// formats, tokenized into SFT examples (ids + completion mask) and preference records (token rows
// + the pairs among them), and a seeded held-out split.
//
// SFT: {"prompt", "completion"} (strings, or message lists rendered with the chat template),
//      {"messages"} (the last assistant turn is the completion), {"text"} (every token trained), and
//      self-instruct's {"instruction", "instances": [{"input", "output"}]} (one example per instance).
// Preferences: {"chosen", "rejected"} with an optional "prompt" (TRL's explicit or implicit prompt;
//      HH-RLHF's files are in this form) and optional "margin"; rankings {"prompt", "responses",
//      "ranking": [best first], "ties"?: [[i, j], ...]} as the feedback app exports them; and the
//      rt-polarity folder (line i of rt-polarity.pos chosen over line i of rt-polarity.neg).
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { tieGroups } from "../algorithms/reward-model.ts";
import { HostRng } from "../engine/random.ts";
import { applyChatTemplate, type ChatMessage } from "../tokenizers/chat.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { pairExample, rankingExample, type PreferenceExample } from "./reward.ts";
import type { SftExample } from "./sft.ts";

export class DataError extends Error {
  override name = "InputError";
}

type Json = Record<string, unknown>;

/** Records of a .jsonl / .jsonl.gz / .json (list) file; errors name file and line. */
export function readRecords(path: string): { record: Json; where: string }[] {
  if (!existsSync(path)) throw new DataError(`data file not found: ${path}`);
  const raw = readFileSync(path);
  const text = (path.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8");
  if (/\.json(\.gz)?$/.test(path)) {
    const list = JSON.parse(text) as unknown;
    if (!Array.isArray(list)) throw new DataError(`${path}: expected a JSON list of records`);
    return list.map((record, i) => ({ record: record as Json, where: `${path}: record ${i + 1}` }));
  }
  const out: { record: Json; where: string }[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      out.push({ record: JSON.parse(line) as Json, where: `${path}:${i + 1}` });
    } catch (err) {
      throw new DataError(`${path}:${i + 1}: not valid JSON (${(err as Error).message})`);
    }
  });
  if (out.length === 0) throw new DataError(`${path}: no records`);
  return out;
}

const isMessages = (v: unknown): v is ChatMessage[] => Array.isArray(v) && v.every((m) => typeof (m as Json)?.role === "string" && typeof (m as Json)?.content === "string");

/** Prompt ids and completion ids such that prompt ++ completion is how the whole text tokenizes when possible. */
function promptAndCompletion(tok: Tokenizer, prompt: string, completion: string): { ids: number[]; completionMask: number[] } {
  const promptIds = tok.encode(prompt);
  let ids = tok.encode(prompt + completion);
  // Tokenizing the whole text keeps merges across the boundary natural; if the prompt's tokens are
  // not a prefix of it, the boundary token merged, so tokenize the two halves apart instead.
  if (!promptIds.every((id, i) => ids[i] === id)) ids = [...promptIds, ...tok.encode(completion, { addSpecialTokens: false })];
  if (tok.eosTokenId !== null) ids.push(tok.eosTokenId);
  return { ids, completionMask: ids.map((_, i) => (i < promptIds.length ? 0 : 1)) };
}

function chat(tok: Tokenizer, messages: ChatMessage[], generationPrompt: boolean): string {
  return applyChatTemplate(tok, messages, { addGenerationPrompt: generationPrompt });
}

/** One record → SFT examples (self-instruct records give one per instance). */
export function renderSft(record: Json, tok: Tokenizer, where: string): SftExample[] {
  const { prompt, completion, messages, text } = record;
  if (prompt !== undefined && completion !== undefined) {
    if (typeof prompt === "string" && typeof completion === "string") return [promptAndCompletion(tok, prompt, completion)];
    if (isMessages(prompt) && isMessages(completion)) return [promptAndCompletion(tok, chat(tok, prompt, true), completion.map((m) => m.content).join("\n"))];
    throw new DataError(`${where}: "prompt" and "completion" must both be strings or both lists of {role, content} messages`);
  }
  if (messages !== undefined) {
    if (!isMessages(messages)) throw new DataError(`${where}: "messages" must be a list of {role, content} messages`);
    const last = messages.at(-1);
    if (last?.role !== "assistant") throw new DataError(`${where}: the last message must be the assistant's (it is the completion)`);
    return [promptAndCompletion(tok, chat(tok, messages.slice(0, -1), true), last.content)];
  }
  if (typeof text === "string") {
    const ids = tok.encode(text);
    if (tok.eosTokenId !== null) ids.push(tok.eosTokenId);
    return [{ ids, completionMask: ids.map(() => 1) }];
  }
  if (typeof record.instruction === "string" && Array.isArray(record.instances)) {
    return (record.instances as Json[]).map((inst, k) => {
      if (typeof inst?.output !== "string") throw new DataError(`${where}: instances[${k}].output must be a string`);
      const input = typeof inst.input === "string" && inst.input.trim() !== "" ? `${inst.input}\n\n` : "";
      return promptAndCompletion(tok, `${record.instruction}\n\n${input}`, inst.output);
    });
  }
  throw new DataError(`${where}: not an SFT record (expected "prompt"+"completion", "messages", "text", or self-instruct's "instruction"+"instances")`);
}

function responseIds(tok: Tokenizer, prompt: unknown, response: unknown, where: string, field: string): number[] {
  let text: string;
  if (prompt === undefined && typeof response === "string") text = response;
  else if (typeof prompt === "string" && typeof response === "string") text = prompt + response;
  else if (isMessages(response)) text = chat(tok, [...(isMessages(prompt) ? prompt : []), ...response], false);
  else throw new DataError(`${where}: "${field}" must be a string (with a string "prompt" or none) or a list of messages`);
  const ids = tok.encode(text);
  // A fixed last token gives the score head the same "end of response" position to read every time.
  if (tok.eosTokenId !== null) ids.push(tok.eosTokenId);
  return ids;
}

/** One record → a preference record (a pair or a ranking). */
export function renderPreference(record: Json, tok: Tokenizer, where: string): PreferenceExample {
  const { prompt, margin } = record;
  if (margin !== undefined && (typeof margin !== "number" || !Number.isFinite(margin))) throw new DataError(`${where}: "margin" must be a number`);
  if (record.chosen !== undefined || record.rejected !== undefined) {
    const chosen = responseIds(tok, prompt, record.chosen, where, "chosen");
    const rejected = responseIds(tok, prompt, record.rejected, where, "rejected");
    return pairExample(chosen, rejected, margin as number | undefined);
  }
  if (Array.isArray(record.responses) && Array.isArray(record.ranking)) {
    const k = record.responses.length;
    const ranking = record.ranking as unknown[];
    if (ranking.length !== k || !ranking.every((i) => Number.isInteger(i) && (i as number) >= 0 && (i as number) < k) || new Set(ranking).size !== k) {
      throw new DataError(`${where}: "ranking" must order all ${k} responses (indices 0..${k - 1}, best first)`);
    }
    const ties = (record.ties ?? []) as [number, number][];
    let groups: number[][];
    try {
      groups = tieGroups(ranking as number[], ties);
    } catch (err) {
      throw new DataError(`${where}: ${(err as Error).message}`);
    }
    const responses = record.responses.map((r, i) => responseIds(tok, prompt, r, where, `responses[${i}]`));
    return rankingExample(responses, groups);
  }
  throw new DataError(`${where}: not a preference record (expected "chosen"+"rejected" or "responses"+"ranking")`);
}

export function readSftData(path: string, tok: Tokenizer): SftExample[] {
  return readRecords(path).flatMap(({ record, where }) => renderSft(record, tok, where));
}

/** Preference records from a file, or from the rt-polarity folder (positive chosen over negative). */
export function readPreferenceData(path: string, tok: Tokenizer): PreferenceExample[] {
  if (existsSync(path) && statSync(path).isDirectory()) {
    const [pos, neg] = ["rt-polarity.pos", "rt-polarity.neg"].map((f) => join(path, f));
    if (!existsSync(pos!) || !existsSync(neg!)) throw new DataError(`${path}: a folder must hold rt-polarity.pos and rt-polarity.neg`);
    // The files are Latin-1 (Cornell's v1.0 release).
    const lines = (p: string) => readFileSync(p, "latin1").split("\n").map((l) => l.trim()).filter(Boolean);
    const [good, bad] = [lines(pos!), lines(neg!)];
    return good.slice(0, Math.min(good.length, bad.length)).map((text, i) => renderPreference({ chosen: text, rejected: bad[i]! }, tok, `${path}: line ${i + 1}`));
  }
  return readRecords(path).map(({ record, where }) => renderPreference(record, tok, where));
}

/** A seeded split: `ratio` of the records (at least one when ratio > 0) held out for evaluation. */
export function splitHeldOut<T>(records: readonly T[], ratio: number, seed: number): { train: T[]; eval: T[] } {
  if (ratio <= 0) return { train: [...records], eval: [] };
  const order = new HostRng(seed).fork().shuffle(records.map((_, i) => i));
  const nEval = Math.max(1, Math.round(records.length * ratio));
  const held = new Set(order.slice(0, nEval));
  return { train: records.filter((_, i) => !held.has(i)), eval: records.filter((_, i) => held.has(i)) };
}
