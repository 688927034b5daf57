// Argilla 2.x records, as `dataset.records.to_list(flatten=False)` returns them (a JSON array, or
// JSON lines of the same objects), and as `dataset.records.log(...)` takes them back:
//   {"id", "fields": {"prompt", "response_1", "response_2", ...}, "metadata": {...},
//    "responses": {QUESTION: [{"value", "user_id", "status"?}]}, "suggestions": {...}, "status"}
// Responses are the fields named response_N (also reply_N, answer_N; "-" or "_" or nothing before N),
// in the order of N. The one question read is the one the records answer:
//   ranking projects, a RankingQuestion: value = [field names best first] (Argilla 2.x), or
//     [{"value": field, "rank": 1..K}] (Argilla 1.x, where equal ranks are ties);
//   pairwise projects, that or a LabelQuestion whose value names the better field, or "tie".
// Responses with status "discarded" or "draft" are left out; rating questions are refused with the
// project task. A suggestion (a model's verdict) on that question, {"value", "score", "agent"}
// (Argilla 1.x: a list of {"question_name", "value", "score", "agent"}), becomes the item's
// suggestion, its score the confidence and its agent the judge; metadata.policy is the item's
// policy. Both are written back on export.
import type { Suggestion, Task } from "../../shared/schema.ts";
import { ranks } from "../answers.ts";
import { checkTask, InteropError, isObject, type ForeignAnswer, type ForeignItem, type Json } from "./foreign.ts";

const RESPONSE_FIELD = /^(?:response|reply|answer)[-_]?(\d+)$/;
const QUESTION = "ranking";

function judgement(task: Task, value: unknown, fields: string[], at: string): Omit<ForeignAnswer, "annotator"> {
  const index = (f: unknown) => {
    const i = fields.indexOf(String(f));
    if (i < 0) throw new InteropError(`${at}: value: ${JSON.stringify(f)} is not one of the response fields ${fields.join(", ")}`);
    return i;
  };
  if (typeof value === "string") {
    if (task !== "pairwise") throw new InteropError(`${at}: value: a ranking project needs a RankingQuestion answer (a list), got a label`);
    if (value === "tie") return { ranking: [0, 1], ties: [[0, 1]] };
    const best = index(value);
    return { ranking: [best, 1 - best], ties: [] };
  }
  if (!Array.isArray(value) || value.length !== fields.length) throw new InteropError(`${at}: value: expected a ranking of all ${fields.length} response fields`);
  if (value.every((v) => typeof v === "string")) return { ranking: value.map(index), ties: [] };
  const ranked = value.map((v) => {
    if (!isObject(v) || typeof v.rank !== "number") throw new InteropError(`${at}: value: expected field names, or {"value", "rank"} entries`);
    return { i: index(v.value), rank: v.rank };
  }).sort((a, b) => a.rank - b.rank);
  const ties: [number, number][] = [];
  for (let k = 1; k < ranked.length; k++) if (ranked[k]!.rank === ranked[k - 1]!.rank) ties.push([ranked[k - 1]!.i, ranked[k]!.i]);
  return { ranking: ranked.map((r) => r.i), ties };
}

export function parseArgilla(records: unknown[], task: Task, where: (n: number) => string): ForeignItem[] {
  checkTask(task, "Argilla");
  return records.map((r, n) => {
    const at = `${where(n)}${isObject(r) && r.id !== undefined ? ` (record ${JSON.stringify(r.id)})` : ""}`;
    if (!isObject(r) || !isObject(r.fields)) throw new InteropError(`${at}: fields: expected an object`);
    const given = r.fields;
    const fields = Object.keys(given).filter((k) => RESPONSE_FIELD.test(k))
      .sort((a, b) => Number(RESPONSE_FIELD.exec(a)![1]) - Number(RESPONSE_FIELD.exec(b)![1]));
    if (fields.length < 2) throw new InteropError(`${at}: fields: expected 2+ response fields named response_1, response_2, ...`);
    const text = (k: string) => {
      const v = given[k];
      if (typeof v !== "string") throw new InteropError(`${at}: fields.${k}: expected a string`);
      return v;
    };
    const responses = r.responses ?? {};
    if (!isObject(responses)) throw new InteropError(`${at}: responses: expected {QUESTION: [{"value", "user_id"}]}`);
    const questions = Object.keys(responses);
    if (questions.length > 1) throw new InteropError(`${at}: responses: expected answers to one question, found ${questions.join(", ")}`);
    const answers: ForeignAnswer[] = [];
    for (const q of questions) {
      const list = responses[q];
      if (!Array.isArray(list)) throw new InteropError(`${at}: responses.${q}: expected a list of {"value", "user_id"}`);
      list.forEach((x, k) => {
        const xat = `${at}: responses.${q}[${k}]`;
        if (!isObject(x)) throw new InteropError(`${xat}: expected {"value", "user_id"}`);
        if (x.status === "discarded" || x.status === "draft") return;
        if (typeof x.user_id !== "string" || !x.user_id) throw new InteropError(`${xat}: user_id: expected a string`);
        if (answers.some((a) => a.annotator === x.user_id)) throw new InteropError(`${xat}: user ${JSON.stringify(x.user_id)} answered this record twice`);
        answers.push({ annotator: x.user_id, ...judgement(task, x.value, fields, xat) });
      });
    }
    const suggestion = suggestionOf(task, r.suggestions, questions[0], fields, at);
    const policy = isObject(r.metadata) ? r.metadata.policy : undefined;
    if (policy !== undefined && typeof policy !== "string") throw new InteropError(`${at}: metadata.policy: expected a string`);
    const id = r.id === undefined || r.id === null ? undefined : String(r.id);
    return {
      item: { ...(id !== undefined ? { id } : {}), prompt: text("prompt"), responses: fields.map(text), ...(suggestion ? { suggestion } : {}), ...(policy !== undefined ? { policy } : {}) },
      answers,
    };
  });
}

// The suggestion for the question the responses answer (or the only one suggested).
function suggestionOf(task: Task, given: unknown, question: string | undefined, fields: string[], at: string): Suggestion | undefined {
  if (given === undefined || given === null) return undefined;
  let byQuestion: Json;
  if (Array.isArray(given)) {
    byQuestion = {};
    given.forEach((x, k) => {
      if (!isObject(x) || typeof x.question_name !== "string") throw new InteropError(`${at}: suggestions[${k}]: expected {"question_name", "value"}`);
      byQuestion[x.question_name] = x;
    });
  } else if (isObject(given)) byQuestion = given;
  else throw new InteropError(`${at}: suggestions: expected {QUESTION: {"value", "score", "agent"}}`);
  const names = Object.keys(byQuestion);
  if (names.length === 0) return undefined;
  const name = question !== undefined && names.includes(question) ? question : names.length === 1 ? names[0]! : undefined;
  if (name === undefined) throw new InteropError(`${at}: suggestions: expected a suggestion for ${question ?? "one question"}, found ${names.join(", ")}`);
  const sat = `${at}: suggestions.${name}`;
  const s = byQuestion[name];
  if (!isObject(s)) throw new InteropError(`${sat}: expected {"value", "score", "agent"}`);
  const { ranking, ties } = judgement(task, s.value, fields, sat);
  if (s.score !== undefined && s.score !== null && !(typeof s.score === "number" && s.score >= 0 && s.score <= 1)) {
    throw new InteropError(`${sat}: score: expected a number from 0 to 1`);
  }
  if (s.agent !== undefined && s.agent !== null && typeof s.agent !== "string") throw new InteropError(`${sat}: agent: expected a string`);
  return {
    ranking, ...(ties.length ? { ties } : {}),
    ...(typeof s.score === "number" ? { confidence: s.score } : {}), ...(typeof s.agent === "string" ? { judge: s.agent } : {}),
  };
}

/** Argilla records: a RankingQuestion named "ranking"; ties are written in Argilla 1.x's {value, rank} form. */
export function renderArgilla(items: ForeignItem[], task: Task): object[] {
  checkTask(task, "Argilla");
  return items.map((f, n) => {
    const prompt = f.item.prompt;
    if (typeof prompt !== "string") throw new InteropError(`item ${JSON.stringify(f.item.id ?? `#${n + 1}`)}: a chat prompt has no Argilla text field; export it with --format preference or ranking`);
    const names = f.item.responses.map((_, i) => `response_${i + 1}`);
    // Ties are written in Argilla 1.x's {value, rank} form; without ties, as field names best first.
    const value = (a: Omit<ForeignAnswer, "annotator">) => {
      if (!a.ties.length) return a.ranking.map((i) => names[i]!);
      const rank = ranks({ skip: false, ranking: a.ranking.map(String), ties: a.ties.map(([x, y]) => [String(x), String(y)]), ratings: null })!;
      return a.ranking.map((i) => ({ value: names[i]!, rank: rank.get(String(i))! + 1 }));
    };
    const s = f.item.suggestion;
    // Ratings suggestions cannot occur here: checkTask allows pairwise and ranking projects only.
    const suggested = s && "ranking" in s ? s : undefined;
    return {
      id: f.item.id ?? String(n + 1),
      fields: { prompt, ...Object.fromEntries(names.map((k, i) => [k, f.item.responses[i]!])) },
      metadata: f.item.policy !== undefined ? { policy: f.item.policy } : {},
      responses: f.answers.length ? {
        [QUESTION]: f.answers.map((a) => ({ value: value(a), user_id: a.annotator, status: "submitted" })),
      } : {},
      suggestions: suggested ? {
        [QUESTION]: { value: value({ ranking: suggested.ranking, ties: suggested.ties ?? [] }), score: suggested.confidence ?? null, agent: suggested.judge ?? null },
      } : {},
      status: f.answers.length ? "completed" : "pending",
    };
  });
}
