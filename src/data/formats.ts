// TRL's dataset formats (https://huggingface.co/docs/trl/dataset_formats), recognised from one
// record's fields and checked field by field, so every complaint names the record and the field:
//
//   language modeling     {"text"}                         | {"messages"}
//   prompt-only           {"prompt"}
//   prompt-completion     {"prompt", "completion"}
//   preference            {"prompt"?, "chosen", "rejected", "margin"?}   (no prompt: implicit)
//   unpaired preference   {"prompt", "completion", "label"}
//   ranking               {"prompt"?, "responses", "ranking", "ties"?}   (the feedback app's export)
//   self-instruct         {"instruction", "instances": [{"input"?, "output"}]}
//
// Text fields are strings ("standard"), or lists of {role, content} messages ("conversational");
// one record is all one or all the other.
import { InputError } from "../io/errors.ts";
import type { ChatMessage } from "../tokenizers/chat.ts";

/** Malformed input data; the message names file:line (or the file) and the field. */
export class DataError extends InputError {}

export type Json = Record<string, unknown>;

export type FormatKind = "language modeling" | "prompt-only" | "prompt-completion" | "preference" | "unpaired preference" | "ranking" | "self-instruct";

export interface RecordFormat {
  kind: FormatKind;
  style: "standard" | "conversational";
  /** Preferences and rankings only: whether the prompt is a field of its own or left inside each response. */
  prompt: "explicit" | "implicit" | null;
}

export function describeFormat(f: RecordFormat): string {
  if (f.kind === "self-instruct") return "self-instruct (instruction + instances)";
  return `${f.kind} (${f.style}${f.prompt ? `, ${f.prompt} prompt` : ""})`;
}

export const sameFormat = (a: RecordFormat, b: RecordFormat) => a.kind === b.kind && a.style === b.style && a.prompt === b.prompt;

/** "a number (3)", "a list", "null": what was found where something else was expected. */
export function describeValue(v: unknown): string {
  if (v === undefined) return "nothing (the field is missing)";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `a string (${JSON.stringify(v.length > 30 ? v.slice(0, 30) + "…" : v)})`;
  if (typeof v === "object") return "an object";
  return `${typeof v === "number" ? "a number" : `a ${typeof v}`} (${String(v)})`;
}

const fail = (where: string, message: string): never => {
  throw new DataError(`${where}: ${message}`);
};

/** A list of {role: string, content: string}; `allowEmpty` for prompts (a conversation may start with nothing). */
export function checkMessages(value: unknown, field: string, where: string, allowEmpty = false): ChatMessage[] {
  if (!Array.isArray(value)) return fail(where, `"${field}" must be a list of {role, content} messages, got ${describeValue(value)}`);
  if (value.length === 0 && !allowEmpty) fail(where, `"${field}" is an empty list of messages`);
  value.forEach((m: unknown, i) => {
    const at = `${field}[${i}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) return fail(where, `"${at}" must be a {role, content} message, got ${describeValue(m)}`);
    for (const key of ["role", "content"]) {
      if (!(key in m)) fail(where, `"${at}" has no "${key}" (a message is {"role": string, "content": string})`);
      const v = (m as Json)[key];
      if (typeof v !== "string") fail(where, `"${at}.${key}" must be a string, got ${describeValue(v)}`);
    }
  });
  return value as ChatMessage[];
}

/** "standard" for a string, "conversational" for a valid message list; anything else is an error naming the field. */
function styleOf(value: unknown, field: string, where: string, allowEmpty = false): RecordFormat["style"] {
  if (typeof value === "string") return "standard";
  if (Array.isArray(value)) {
    checkMessages(value, field, where, allowEmpty);
    return "conversational";
  }
  return fail(where, `"${field}" must be a string or a list of {role, content} messages, got ${describeValue(value)}`);
}

/** One style for all the record's text fields (TRL's rule: a record is standard or conversational, not both). */
function oneStyle(record: Json, fields: string[], where: string): RecordFormat["style"] {
  const styles = fields.map((f) => [f, styleOf(record[f], f, where, f === "prompt")] as const);
  const [first, style] = styles[0]!;
  const other = styles.find(([, s]) => s !== style);
  if (other) fail(where, `"${other[0]}" is ${other[1] === "standard" ? "a string" : "a list of messages"} but "${first}" is ${style === "standard" ? "a string" : "a list of messages"}; a record's fields must all be text or all be messages`);
  return style;
}

function requireBoth(record: Json, a: string, b: string, where: string): void {
  if (!(a in record)) fail(where, `"${b}" is present but "${a}" is missing`);
  if (!(b in record)) fail(where, `"${a}" is present but "${b}" is missing`);
}

const isIndex = (v: unknown, k: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) < k;

function checkRanking(record: Json, k: number, where: string): void {
  const ranking = record.ranking;
  if (!Array.isArray(ranking)) return fail(where, `"ranking" must be a list of response indices (best first), got ${describeValue(ranking)}`);
  const seen = new Map<number, number>();
  ranking.forEach((v: unknown, i) => {
    if (!isIndex(v, k)) fail(where, `"ranking[${i}]" must be a response index 0..${k - 1}, got ${describeValue(v)}`);
    if (seen.has(v as number)) fail(where, `"ranking[${i}]" repeats index ${String(v)} (already at ranking[${seen.get(v as number)}]); a ranking names each response once`);
    seen.set(v as number, i);
  });
  if (ranking.length !== k) fail(where, `"ranking" must order all ${k} responses, got ${ranking.length} indices`);
  if (record.ties === undefined) return;
  if (!Array.isArray(record.ties)) fail(where, `"ties" must be a list of [i, j] index pairs, got ${describeValue(record.ties)}`);
  (record.ties as unknown[]).forEach((t, i) => {
    if (!Array.isArray(t) || t.length !== 2 || !t.every((x) => isIndex(x, k))) fail(where, `"ties[${i}]" must be a pair [i, j] of response indices 0..${k - 1}, got ${JSON.stringify(t)}`);
  });
}

/**
 * The record's format, after checking every field it uses; throws a DataError that names `where`
 * and the field otherwise. Fields are matched in a fixed order, so a record with extra fields
 * (an "id", a "source") is still recognised.
 */
export function recordFormat(record: unknown, where: string): RecordFormat {
  if (typeof record !== "object" || record === null || Array.isArray(record)) return fail(where, `expected a JSON object (one record), got ${describeValue(record)}`);
  const r = record as Json;
  const has = (f: string) => f in r;
  const format = (kind: FormatKind, style: RecordFormat["style"], prompt: RecordFormat["prompt"] = null): RecordFormat => ({ kind, style, prompt });
  const promptKind = has("prompt") ? "explicit" : "implicit";
  if (has("chosen") || has("rejected")) {
    requireBoth(r, "chosen", "rejected", where);
    if (r.margin !== undefined && (typeof r.margin !== "number" || !Number.isFinite(r.margin))) fail(where, `"margin" must be a finite number, got ${describeValue(r.margin)}`);
    return format("preference", oneStyle(r, [...(has("prompt") ? ["prompt"] : []), "chosen", "rejected"], where), promptKind);
  }
  if (has("responses") || has("ranking")) {
    requireBoth(r, "responses", "ranking", where);
    if (!Array.isArray(r.responses) || r.responses.length < 2) fail(where, `"responses" must be a list of at least 2 responses, got ${describeValue(r.responses)}`);
    const responses = r.responses as unknown[];
    const fields = { ...(has("prompt") ? { prompt: r.prompt } : {}), ...Object.fromEntries(responses.map((x, i) => [`responses[${i}]`, x])) };
    const style = oneStyle(fields, Object.keys(fields), where);
    checkRanking(r, responses.length, where);
    return format("ranking", style, promptKind);
  }
  if (has("instruction") || has("instances")) {
    requireBoth(r, "instruction", "instances", where);
    if (typeof r.instruction !== "string") fail(where, `"instruction" must be a string, got ${describeValue(r.instruction)}`);
    if (!Array.isArray(r.instances) || r.instances.length === 0) fail(where, `"instances" must be a non-empty list of {input, output}, got ${describeValue(r.instances)}`);
    (r.instances as unknown[]).forEach((inst, i) => {
      const x = (typeof inst === "object" && inst !== null ? inst : {}) as Json;
      if (typeof x.output !== "string") fail(where, `"instances[${i}].output" must be a string, got ${describeValue(x.output)}`);
      if (x.input !== undefined && typeof x.input !== "string") fail(where, `"instances[${i}].input" must be a string, got ${describeValue(x.input)}`);
    });
    return format("self-instruct", "standard");
  }
  if (has("completion")) {
    if (!has("prompt")) fail(where, `"completion" is present but "prompt" is missing`);
    const style = oneStyle(r, ["prompt", "completion"], where);
    if (!has("label")) return format("prompt-completion", style);
    if (typeof r.label !== "boolean") fail(where, `"label" must be true or false (unpaired preference), got ${describeValue(r.label)}`);
    return format("unpaired preference", style);
  }
  if (has("messages")) {
    checkMessages(r.messages, "messages", where);
    return format("language modeling", "conversational");
  }
  if (has("text")) {
    if (typeof r.text !== "string") fail(where, `"text" must be a string, got ${describeValue(r.text)}`);
    return format("language modeling", "standard");
  }
  if (has("prompt")) return format("prompt-only", styleOf(r.prompt, "prompt", where));
  const fields = Object.keys(r);
  return fail(
    where,
    `no known dataset format (fields: ${fields.length ? fields.map((f) => `"${f}"`).join(", ") : "none"}); expected "text", "messages", "prompt"(+"completion"), ` +
      `"chosen"+"rejected", "responses"+"ranking" or "instruction"+"instances"`,
  );
}
