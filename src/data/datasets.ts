// Reading and rendering the trainers' data: JSON lines (optionally gzipped) in TRL's dataset
// formats (formats.ts checks them), tokenized into SFT examples (ids + completion mask)
// and preference records (token rows + the pairs among them), and a seeded held-out split.
//
// SFT: {"prompt", "completion"} (strings, or message lists rendered with the chat template),
//      {"messages"} (the last assistant turn is the completion), {"text"} (every token trained), and
//      self-instruct's {"instruction", "instances": [{"input", "output"}]} (one example per instance).
// Preferences: {"chosen", "rejected"} with an optional "prompt" (TRL's explicit or implicit prompt)
//      and optional "margin"; rankings {"prompt", "responses", "ranking": [best first],
//      "ties"?: [[i, j], ...]} as the feedback app exports them; and the rt-polarity folder (line i
//      of rt-polarity.pos chosen over line i of rt-polarity.neg). HH-RLHF's raw transcripts are
//      one implicit-prompt pair each; `rlhf data convert --from hh-rlhf` splits off the prompt.
//
// Records marked "tie": true (rlhf judge's ties) are skipped with a count on stderr.
// Every error names file:line and the field. With `skipInvalid`, malformed records are skipped
// instead, and one line says how many and why the first one was.
import { existsSync, statSync } from "node:fs";
import { numberedLines, readInputText } from "../io/text-file.ts";
import { expandRanking, tieGroups } from "../algorithms/reward-model.ts";
import { HostRng } from "../engine/random.ts";
import { applyChatTemplate, promptText, type ChatMessage } from "../tokenizers/chat.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { DataError, describeFormat, recordFormat, type Json } from "./formats.ts";
import { readRtPolarity } from "./rt-polarity.ts";

export { DataError };

/** A rendered demonstration: token ids and, per token, 1 where it belongs to the completion. */
export interface SftExample {
  ids: readonly number[];
  completionMask: readonly number[];
}

/**
 * Responses to one prompt (prompt tokens included in each) and the preferences among them:
 * a pair record has responses [chosen, rejected] and pairs [{chosen: 0, rejected: 1}].
 */
export interface PreferenceExample {
  responses: number[][];
  pairs: { chosen: number; rejected: number }[];
  /** TRL's `margin` column: r_chosen must beat r_rejected by this much. */
  margin?: number;
}

export function pairExample(chosen: number[], rejected: number[], margin?: number): PreferenceExample {
  return { responses: [chosen, rejected], pairs: [{ chosen: 0, rejected: 1 }], ...(margin !== undefined ? { margin } : {}) };
}

/** A ranking of responses, best first, as tie groups of response indices (ties yield no pairs). */
export function rankingExample(responses: number[][], groups: number[][]): PreferenceExample {
  for (const i of groups.flat()) if (i >= responses.length) throw new Error(`ranking names response ${i}, but there are ${responses.length}`);
  return { responses, pairs: expandRanking(groups) };
}

export interface ReadOptions {
  /** Skip malformed records (counted, and summarised through `warn`) instead of stopping at the first. */
  skipInvalid?: boolean;
  /** Where the "skipped N invalid records" line goes; default stderr. */
  warn?: (message: string) => void;
}

/** A line of the file: a parsed record, or why it is not one. */
export type RecordLine = { where: string; record: Json } | { where: string; invalid: string };

/**
 * Every record of a .jsonl / .jsonl.gz / .json (list) file, `where` naming file:line (a .json list:
 * "file: record N"); lines that are not JSON come back as `invalid`. A missing or empty file throws.
 */
export function readRecordLines(path: string): RecordLine[] {
  const text = readInputText(path, "data file");
  let lines: RecordLine[];
  if (/\.json(\.gz)?$/.test(path)) {
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch (err) {
      throw new DataError(`${path}: not valid JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(list)) throw new DataError(`${path}: expected a JSON list of records`);
    lines = list.map((record, i) => ({ record: record as Json, where: `${path}: record ${i + 1}` }));
  } else {
    lines = numberedLines(text).map(({ line, text }) => {
      const where = `${path}:${line}`;
      try {
        return { record: JSON.parse(text) as Json, where };
      } catch (err) {
        return { invalid: `not valid JSON (${(err as Error).message})`, where };
      }
    });
  }
  if (lines.length === 0) throw new DataError(`${path}: no records (the file is empty)`);
  return lines;
}

/** What skipInvalid passed over. */
class Skipped {
  count = 0;
  first = "";
  add(message: string): void {
    if (this.count++ === 0) this.first = message;
  }
  toString(): string {
    return `skipped ${this.count} invalid record${this.count === 1 ? "" : "s"} (first: ${this.first})`;
  }
}

/** Renders each line; a DataError stops the read, or with skipInvalid is counted and reported once. */
function renderLines<T>(path: string, lines: RecordLine[], render: (record: Json, where: string) => T[], options: ReadOptions): T[] {
  const skipped = new Skipped();
  const out: T[] = [];
  let ties = 0;
  for (const line of lines) {
    // rlhf judge writes ties and order disagreements as "tie": true records: no preference to learn.
    if ("record" in line && line.record?.tie === true) {
      ties++;
      continue;
    }
    try {
      if ("invalid" in line) throw new DataError(`${line.where}: ${line.invalid}`);
      out.push(...render(line.record, line.where));
    } catch (err) {
      if (!(err instanceof DataError) || !options.skipInvalid) throw err;
      skipped.add(err.message);
    }
  }
  const warn = options.warn ?? ((m) => process.stderr.write(m + "\n"));
  if (ties > 0) {
    if (out.length === 0 && skipped.count === 0) throw new DataError(`${path}: every record is a tie ("tie": true); there is no preference to learn`);
    warn(`skipped ${ties} tie record${ties === 1 ? "" : "s"} ("tie": true)`);
  }
  if (skipped.count > 0) {
    if (out.length === 0) throw new DataError(`${path}: no valid records (${skipped})`);
    warn(skipped.toString());
  }
  return out;
}

/** Records of a .jsonl / .jsonl.gz / .json (list) file; errors name file and line. */
export function readRecords(path: string, options: ReadOptions = {}): { record: Json; where: string }[] {
  return renderLines(path, readRecordLines(path), (record, where) => {
    if (typeof record !== "object" || record === null || Array.isArray(record)) throw new DataError(`${where}: expected a JSON object (one record)`);
    return [{ record, where }];
  }, options);
}

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
  const format = recordFormat(record, where);
  switch (format.kind) {
    case "prompt-completion": {
      const { prompt, completion } = record as { prompt: string | ChatMessage[]; completion: string | ChatMessage[] };
      const text = typeof completion === "string" ? completion : completion.map((m) => m.content).join("\n");
      return [promptAndCompletion(tok, promptText(tok, prompt), text)];
    }
    case "language modeling": {
      if (format.style === "standard") {
        const ids = tok.encode(record.text as string);
        if (tok.eosTokenId !== null) ids.push(tok.eosTokenId);
        return [{ ids, completionMask: ids.map(() => 1) }];
      }
      const messages = record.messages as ChatMessage[];
      const last = messages.at(-1)!;
      if (last.role !== "assistant") throw new DataError(`${where}: "messages[${messages.length - 1}].role" is "${last.role}"; the last message must be the assistant's (it is the completion)`);
      return [promptAndCompletion(tok, chat(tok, messages.slice(0, -1), true), last.content)];
    }
    case "self-instruct":
      return (record.instances as { input?: string; output: string }[]).map((inst) => {
        const input = inst.input !== undefined && inst.input.trim() !== "" ? `${inst.input}\n\n` : "";
        return promptAndCompletion(tok, `${record.instruction as string}\n\n${input}`, inst.output);
      });
    default:
      throw new DataError(`${where}: a ${describeFormat(format)} record; SFT needs "prompt"+"completion", "messages", "text", or self-instruct's "instruction"+"instances"`);
  }
}

/** Token rows of one response as the reward model reads it: prompt ++ response, then EOS. */
function responseIds(tok: Tokenizer, prompt: string | ChatMessage[] | undefined, response: string | ChatMessage[]): number[] {
  // recordFormat has checked that prompt and response are both text or both messages.
  const text = typeof response === "string" ? ((prompt ?? "") as string) + response : chat(tok, [...((prompt ?? []) as ChatMessage[]), ...response], false);
  const ids = tok.encode(text);
  // A fixed last token gives the score head the same "end of response" position to read every time.
  if (tok.eosTokenId !== null) ids.push(tok.eosTokenId);
  return ids;
}

/** One record → a preference record (a pair or a ranking). */
export function renderPreference(record: Json, tok: Tokenizer, where: string): PreferenceExample {
  const format = recordFormat(record, where);
  const prompt = record.prompt as string | ChatMessage[] | undefined;
  if (format.kind === "preference") {
    const [chosen, rejected] = [record.chosen, record.rejected].map((r) => responseIds(tok, prompt, r as string | ChatMessage[]));
    return pairExample(chosen!, rejected!, record.margin as number | undefined);
  }
  if (format.kind === "ranking") {
    let groups: number[][];
    try {
      groups = tieGroups(record.ranking as number[], (record.ties ?? []) as [number, number][]);
    } catch (err) {
      throw new DataError(`${where}: "ties": ${(err as Error).message.replace(/^tieGroups: /, "")}`);
    }
    return rankingExample((record.responses as (string | ChatMessage[])[]).map((r) => responseIds(tok, prompt, r)), groups);
  }
  throw new DataError(`${where}: a ${describeFormat(format)} record; expected a preference ("chosen"+"rejected") or a ranking ("responses"+"ranking")`);
}

export function readSftData(path: string, tok: Tokenizer, options: ReadOptions = {}): SftExample[] {
  return renderLines(path, readRecordLines(path), (record, where) => renderSft(record, tok, where), options);
}

// Plain-text corpora (TinyStories' files among them) separate their documents with this.
const END_OF_TEXT = "<|endoftext|>";

/**
 * Text for a language-model loss: a .txt file is plain text, one document per `<|endoftext|>`
 * (the whole file when it has none); any other file is SFT data in a TRL format.
 */
export function readLmData(path: string, tok: Tokenizer): SftExample[] {
  if (!path.toLowerCase().endsWith(".txt")) return readSftData(path, tok);
  const documents = readInputText(path).split(END_OF_TEXT).map((d) => d.trim()).filter((d) => d.length > 0);
  return documents.flatMap((text, i) => renderSft({ text }, tok, `${path}: document ${i + 1}`));
}

/** Preference records from a file, or from the rt-polarity folder (positive chosen over negative). */
export function readPreferenceData(path: string, tok: Tokenizer, options: ReadOptions = {}): PreferenceExample[] {
  if (existsSync(path) && statSync(path).isDirectory()) {
    return readRtPolarity(path).pairs.map(({ chosen, rejected, where }) => renderPreference({ chosen, rejected }, tok, where));
  }
  return renderLines(path, readRecordLines(path), (record, where) => [renderPreference(record, tok, where)], options);
}

/** A seeded split: `ratio` of the records (at least one when ratio > 0) held out for evaluation. */
export function splitHeldOut<T>(records: readonly T[], ratio: number, seed: number): { train: T[]; eval: T[] } {
  if (ratio <= 0) return { train: [...records], eval: [] };
  const order = new HostRng(seed).fork().shuffle(records.map((_, i) => i));
  const nEval = Math.max(1, Math.round(records.length * ratio));
  const held = new Set(order.slice(0, nEval));
  return { train: records.filter((_, i) => !held.has(i)), eval: records.filter((_, i) => held.has(i)) };
}
