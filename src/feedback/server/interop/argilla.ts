// Argilla 2.x records, as `dataset.records.to_list(flatten=False)` returns them (a JSON array, or
// JSON lines of the same objects), and as `dataset.records.log(...)` takes them back:
//   {"id", "fields": {"prompt", "response_1", "response_2", ...}, "metadata": {...},
//    "responses": {QUESTION: [{"value", "user_id", "status"?}]}, "suggestions": {...}, "status"}
// Responses are the fields named response_N (also reply_N, answer_N; "-" or "_" or nothing before N),
// in the order of N. The one question read is the one the records answer:
//   ranking projects, a RankingQuestion: value = [field names best first] (Argilla 2.x), or
//     [{"value": field, "rank": 1..K}] (Argilla 1.x, where equal ranks are ties);
//   pairwise projects, that or a LabelQuestion whose value names the better field, or "tie".
// Responses with status "discarded" or "draft" are left out; suggestions (model verdicts) and
// metadata are not read, and rating questions are refused with the project task.
import type { Task } from "../../shared/schema.ts";
import { ranks } from "../answers.ts";
import { checkTask, InteropError, isObject, type ForeignAnswer, type ForeignItem } from "./foreign.ts";

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
    const id = r.id === undefined || r.id === null ? undefined : String(r.id);
    return { item: { ...(id !== undefined ? { id } : {}), prompt: text("prompt"), responses: fields.map(text) }, answers };
  });
}

/** Argilla records: a RankingQuestion named "ranking"; ties are written in Argilla 1.x's {value, rank} form. */
export function renderArgilla(items: ForeignItem[], task: Task): object[] {
  checkTask(task, "Argilla");
  return items.map((f, n) => {
    const prompt = f.item.prompt;
    if (typeof prompt !== "string") throw new InteropError(`item ${JSON.stringify(f.item.id ?? `#${n + 1}`)}: a chat prompt has no Argilla text field; export it with --format preference or ranking`);
    const names = f.item.responses.map((_, i) => `response_${i + 1}`);
    const rankOf = (a: ForeignAnswer) => {
      const rank = ranks({ skip: false, ranking: a.ranking.map(String), ties: a.ties.map(([x, y]) => [String(x), String(y)]), ratings: null })!;
      return a.ranking.map((i) => ({ value: names[i]!, rank: rank.get(String(i))! + 1 }));
    };
    return {
      id: f.item.id ?? String(n + 1),
      fields: { prompt, ...Object.fromEntries(names.map((k, i) => [k, f.item.responses[i]!])) },
      metadata: {},
      responses: f.answers.length ? {
        [QUESTION]: f.answers.map((a) => ({ value: a.ties.length ? rankOf(a) : a.ranking.map((i) => names[i]!), user_id: a.annotator, status: "submitted" })),
      } : {},
      suggestions: {},
      status: f.answers.length ? "completed" : "pending",
    };
  });
}
