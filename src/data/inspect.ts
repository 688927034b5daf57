// `rlhf data inspect`: which TRL format a file holds, how many records, and how long they are once
// rendered the way the trainers render them (chat template, BOS, EOS) — in tokens with a
// tokenizer, in characters without one.
import type { ChatMessage } from "../tokenizers/chat.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { readRecordLines, renderPreference, renderSft } from "./datasets.ts";
import { promptText } from "../tokenizers/chat.ts";
import { DataError, describeFormat, recordFormat, sameFormat, type Json, type RecordFormat } from "./formats.ts";

export interface LengthStats {
  min: number;
  mean: number;
  median: number;
  p95: number;
  max: number;
}

export interface InspectReport {
  file: string;
  format: RecordFormat;
  format_name: string;
  records: number;
  /** Rendered examples: self-instruct records give one per instance; otherwise one per record. */
  examples: number;
  unit: "tokens" | "characters";
  /** Which template rendered message lists: the tokenizer's own, the documented default, or none (no messages). */
  chat_template: "tokenizer" | "default" | null;
  /** prompt, completion / chosen / rejected / response, total (the longest sequence of a record). */
  lengths: Record<string, LengthStats>;
  /** Examples whose every sequence fits in max_length L (a preference trainer drops the rest, SFT truncates). */
  fits: Record<string, number>;
}

export const FIT_LENGTHS = [128, 256, 512, 1024, 2048, 4096];

/**
 * Counts characters (code points) in place of tokens, with no BOS or EOS, so that the same rendering
 * code measures text when no tokenizer is given.
 */
export const characterCounter: Tokenizer = {
  vocabSize: 0x110000,
  bosTokenId: null,
  eosTokenId: null,
  padTokenId: null,
  chatTemplate: null,
  modelMaxLength: null,
  encode: (text) => Array.from(text, (c) => c.codePointAt(0)!),
  decode: (ids) => String.fromCodePoint(...ids),
  save: () => Promise.reject(new Error("the character counter is not a tokenizer that can be saved")),
};

export function lengthStats(values: readonly number[]): LengthStats {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  const median = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { min: s[0]!, mean: s.reduce((a, b) => a + b, 0) / n, median, p95: s[Math.ceil(0.95 * n) - 1]!, max: s[n - 1]! };
}

const sharedPrefix = (a: readonly number[], b: readonly number[]) => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
};

type Parts = Record<string, number>;

/** Per rendered example (one per record; self-instruct: one per instance): the lengths of its sequences' parts. */
function measure(record: Json, format: RecordFormat, tok: Tokenizer, where: string): Parts[][] {
  switch (format.kind) {
    case "preference":
    case "ranking": {
      const rows = renderPreference(record, tok, where).responses;
      // An implicit prompt is the rows' shared beginning, as TRL's extract_prompt finds it.
      const prompt = format.prompt === "explicit" ? tok.encode(promptText(tok, record.prompt as string | ChatMessage[])).length : rows.slice(1).reduce((p, r) => Math.min(p, sharedPrefix(rows[0]!, r)), rows[0]!.length);
      const total = Math.max(...rows.map((r) => r.length));
      if (format.kind === "ranking") return [rows.map((r) => ({ prompt, response: r.length - prompt, total }))];
      return [[{ prompt, chosen: rows[0]!.length - prompt, rejected: rows[1]!.length - prompt, total }]];
    }
    case "prompt-only":
      return [[{ prompt: tok.encode(promptText(tok, record.prompt as string | ChatMessage[])).length }]];
    default: {
      const asSft = format.kind === "unpaired preference" ? { prompt: record.prompt, completion: record.completion } : record;
      return renderSft(asSft, tok, where).map(({ ids, completionMask }) => {
        const completion = completionMask.reduce((a, b) => a + b, 0);
        if (format.kind === "language modeling" && format.style === "standard") return [{ total: ids.length }];
        return [{ prompt: ids.length - completion, completion, total: ids.length }];
      });
    }
  }
}

/**
 * Reads and measures a file. Every record must be valid and of one format; the first that is not
 * is named by file:line. `tok` null counts characters.
 */
export function inspectFile(path: string, tok: Tokenizer | null, onProgress?: (done: number, total: number) => void): InspectReport {
  const lines = readRecordLines(path);
  const counter = tok ?? characterCounter;
  let first: { format: RecordFormat; where: string } | null = null;
  const parts: Parts[] = [];
  let examples = 0;
  const fits = Object.fromEntries(FIT_LENGTHS.map((l) => [String(l), 0]));
  lines.forEach((line, i) => {
    onProgress?.(i, lines.length);
    if ("invalid" in line) throw new DataError(`${line.where}: ${line.invalid}`);
    const format = recordFormat(line.record, line.where);
    if (!first) first = { format, where: line.where };
    else if (!sameFormat(format, first.format)) {
      throw new DataError(`${line.where}: a ${describeFormat(format)} record, but ${first.where} is ${describeFormat(first.format)}; a file must hold one format`);
    }
    for (const example of measure(line.record, format, counter, line.where)) {
      examples++;
      parts.push(...example);
      const longest = Math.max(...example.map((m) => m.total ?? m.prompt!));
      for (const l of FIT_LENGTHS) if (longest <= l) fits[String(l)]!++;
    }
  });
  onProgress?.(lines.length, lines.length);
  const format = first!.format;
  const names = Object.keys(parts[0]!);
  const lengths = Object.fromEntries(names.map((n) => [n, lengthStats(parts.map((p) => p[n]!))]));
  const usesMessages = format.style === "conversational";
  return {
    file: path,
    format,
    format_name: describeFormat(format),
    records: lines.length,
    examples,
    unit: tok ? "tokens" : "characters",
    chat_template: usesMessages ? (counter.chatTemplate ? "tokenizer" : "default") : null,
    lengths,
    fits,
  };
}

/** The report as a few aligned lines for a terminal. */
export function formatReport(r: InspectReport, tokenizerName: string | null): string {
  const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));
  const template = r.chat_template === null ? "" : `; messages rendered with ${r.chat_template === "tokenizer" ? "the tokenizer's chat template" : "the default chat template (src/tokenizers/chat.ts)"}`;
  const out = [
    `file      ${r.file}`,
    `format    ${r.format_name}`,
    `records   ${r.records}${r.examples !== r.records ? ` (${r.examples} examples)` : ""}`,
    "",
    `lengths in ${r.unit}${tokenizerName ? ` (${tokenizerName})` : " (no tokenizer: pass --tokenizer or --model for tokens)"}${template}`,
    `${"".padEnd(12)}${["min", "mean", "median", "p95", "max"].map((h) => h.padStart(9)).join("")}`,
    ...Object.entries(r.lengths).map(([name, s]) => `${name.padEnd(12)}${[s.min, s.mean, s.median, s.p95, s.max].map((x) => fmt(x).padStart(9)).join("")}`),
    "",
    `${r.examples !== r.records ? "examples" : "records"} that fit in max_length: ${Object.entries(r.fits).map(([l, n]) => `${l}: ${n} (${((100 * n) / r.examples).toFixed(1)}%)`).join(", ")}`,
  ];
  return out.join("\n") + "\n";
}
