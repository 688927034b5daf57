// What rlhf judge reads: records of one prompt and its responses, in either of two shapes,
//   {"prompt", "responses": [...]}              the feedback app's import format (K ≥ 2); with the
//                                               export's "ranking" (+ "ties") people's preferences
//                                               come along, for the agreement report;
//   {"prompt"?, "chosen", "rejected"}           preference pairs to re-label (TRL's format; without
//                                               a prompt, the shared beginning is the prompt, as for
//                                               DPO; HH-RLHF's raw transcripts read this way);
// text or {role, content} message lists. Errors name file:line and the field.
import { expandRanking, tieGroups } from "../algorithms/reward-model.ts";
import { readRecordLines } from "../data/datasets.ts";
import { splitCommonMessages, splitCommonPrefix } from "../data/dpo-data.ts";
import { checkMessages, DataError, describeValue, type Json } from "../data/formats.ts";
import type { ChatMessage } from "../tokenizers/chat.ts";

export type Text = string | ChatMessage[];

export interface JudgeItem {
  where: string;
  /** The record's "id" (the feedback app's item id), carried into the output. */
  id?: string | number;
  prompt: Text;
  responses: Text[];
  /** People's preferences among the responses (indices), when the record carries them. */
  human: { chosen: number; rejected: number }[];
}

function checkText(value: unknown, field: string, where: string, allowEmpty: boolean): Text {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return checkMessages(value, field, where, allowEmpty);
  throw new DataError(`${where}: "${field}" must be a string or a list of {role, content} messages, got ${describeValue(value)}`);
}

export function judgeItem(record: Json, where: string): JudgeItem {
  const id = typeof record.id === "string" || typeof record.id === "number" ? { id: record.id } : {};
  return { ...id, ...itemOf(record, where) };
}

function itemOf(record: Json, where: string): JudgeItem {
  if ("chosen" in record || "rejected" in record) {
    for (const f of ["chosen", "rejected"]) if (!(f in record)) throw new DataError(`${where}: "${f}" is missing (a pair has "chosen" and "rejected")`);
    const chosen = checkText(record.chosen, "chosen", where, false);
    const rejected = checkText(record.rejected, "rejected", where, false);
    if (typeof chosen !== typeof rejected) throw new DataError(`${where}: "chosen" and "rejected" must both be text or both be messages`);
    const split = record.prompt !== undefined
      ? { prompt: checkText(record.prompt, "prompt", where, true), chosen, rejected }
      : typeof chosen === "string" ? splitCommonPrefix(chosen, rejected as string) : splitCommonMessages(chosen, rejected as ChatMessage[]);
    // A tie record (rlhf judge's own output, re-labelled) carries no preference to agree with.
    return { where, prompt: split.prompt, responses: [split.chosen, split.rejected], human: record.tie === true ? [] : [{ chosen: 0, rejected: 1 }] };
  }
  if (!("responses" in record)) throw new DataError(`${where}: expected "prompt" + "responses" (the feedback app's import format) or "chosen" + "rejected" (a pair to re-label)`);
  if (!Array.isArray(record.responses) || record.responses.length < 2) throw new DataError(`${where}: "responses" must be a list of at least 2 responses, got ${describeValue(record.responses)}`);
  if (record.prompt === undefined) throw new DataError(`${where}: "prompt" is missing`);
  const prompt = checkText(record.prompt, "prompt", where, true);
  const responses = (record.responses as unknown[]).map((r, i) => checkText(r, `responses[${i}]`, where, false));
  return { where, prompt, responses, human: humanPairs(record, responses.length, where) };
}

/** Pairs from an exported ranking (best first, ties apart); none without one. */
function humanPairs(record: Json, k: number, where: string): { chosen: number; rejected: number }[] {
  if (record.ranking === undefined) return [];
  const ranking = record.ranking;
  if (!Array.isArray(ranking) || ranking.length !== k || new Set(ranking).size !== k || !ranking.every((i) => Number.isInteger(i) && i >= 0 && i < k)) {
    throw new DataError(`${where}: "ranking" must list each of the ${k} response indices once, best first, got ${JSON.stringify(ranking)}`);
  }
  try {
    return expandRanking(tieGroups(ranking as number[], (record.ties ?? []) as [number, number][]));
  } catch (err) {
    throw new DataError(`${where}: "ties": ${(err as Error).message}`);
  }
}

/** Every record of the file (tie records included: re-labelling them is a use of rlhf judge). */
export function readJudgeItems(path: string): JudgeItem[] {
  return readRecordLines(path).map((line) => {
    if ("invalid" in line) throw new DataError(`${line.where}: ${line.invalid}`);
    const { record, where } = line;
    if (typeof record !== "object" || record === null || Array.isArray(record)) throw new DataError(`${where}: expected a JSON object (one record)`);
    return judgeItem(record, where);
  });
}

/** A prompt or response as the judge template shows it: text as is, messages as "role: content" turns. */
export function shownText(value: Text): string {
  return typeof value === "string" ? value : value.map((m) => `${m.role}: ${m.content}`).join("\n\n");
}
