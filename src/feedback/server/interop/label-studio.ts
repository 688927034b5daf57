// Label Studio task JSON (an array of tasks, as its JSON export writes and its import reads).
//   pairwise (the Pairwise tag over two Text tags):
//     {"id", "data": {"prompt", "answer1", "answer2"},
//      "annotations": [{"completed_by", "result": [{"type": "pairwise", "from_name", "to_name",
//                                                    "value": {"selected": "left" | "right"}}]}]}
//     left is answer1 (response 0), right is answer2 (response 1).
//   ranking (the Ranker tag over a List tag):
//     {"id", "data": {"prompt", "items": [{"id", "body"}]},
//      "annotations": [{"completed_by", "result": [{"type": "ranker", "from_name", "to_name",
//                                                    "value": {"ranker": {FROM_NAME: [item ids best first]}}}]}]}
// `completed_by` is read as a user name (string), {"email"} or {"username"}, or Label Studio's
// numeric user id (becoming labeler "label-studio-user-N"). Cancelled annotations (was_cancelled)
// are left out. The first of `predictions` ([{"model_version", "score", "result"}], a model's
// pre-annotation) becomes the item's suggestion (model_version its judge, score its confidence),
// and data.policy its policy; both are written back. Neither tag has ties: tied answers and tied
// suggestions are not exported.
import type { Prompt, Suggestion, Task } from "../../shared/schema.ts";
import { checkTask, InteropError, isObject, type Json, type ForeignAnswer, type ForeignItem } from "./foreign.ts";

const PAIRWISE = { from_name: "comparison", to_name: "answer1,answer2" };
const RANKER = { from_name: "rank", to_name: "answers" };

function annotator(a: Json, at: string): string {
  const by = a.completed_by;
  if (typeof by === "string" && by) return by;
  if (typeof by === "number") return `label-studio-user-${by}`;
  if (isObject(by)) {
    for (const k of ["email", "username"]) if (typeof by[k] === "string" && by[k]) return by[k] as string;
    if (typeof by.id === "number") return `label-studio-user-${by.id}`;
  }
  throw new InteropError(`${at}: completed_by: expected a user name, {"email"} or a numeric user id`);
}

function text(data: Json, key: string, at: string): string {
  const v = data[key];
  if (typeof v !== "string") throw new InteropError(`${at}: data.${key}: expected a string`);
  return v;
}

function judgement(task: Task, result: unknown, itemIds: string[], at: string): Omit<ForeignAnswer, "annotator"> {
  if (!Array.isArray(result)) throw new InteropError(`${at}.result: expected an array`);
  const type = task === "pairwise" ? "pairwise" : "ranker";
  const hits = result.filter((r) => isObject(r) && r.type === type) as Json[];
  if (hits.length !== 1) throw new InteropError(`${at}.result: expected exactly one result of type "${type}", found ${hits.length}`);
  const value = hits[0]!.value;
  if (task === "pairwise") {
    const selected = isObject(value) ? value.selected : undefined;
    if (selected !== "left" && selected !== "right") throw new InteropError(`${at}.result: value.selected: expected "left" or "right"`);
    return { ranking: selected === "left" ? [0, 1] : [1, 0], ties: [] };
  }
  const ranker = isObject(value) && isObject(value.ranker) ? value.ranker : undefined;
  const lists = ranker ? Object.values(ranker) : [];
  if (lists.length !== 1 || !Array.isArray(lists[0])) throw new InteropError(`${at}.result: value.ranker: expected {NAME: [item ids best first]}`);
  const ranking = (lists[0] as unknown[]).map((id) => itemIds.indexOf(String(id)));
  if (ranking.length !== itemIds.length || ranking.includes(-1) || new Set(ranking).size !== ranking.length) {
    throw new InteropError(`${at}.result: value.ranker: must list every id of data.items exactly once`);
  }
  return { ranking, ties: [] };
}

export function parseLabelStudio(json: unknown, task: Task, file: string): ForeignItem[] {
  checkTask(task, "Label Studio");
  if (!Array.isArray(json)) throw new InteropError(`${file}: expected a JSON array of Label Studio tasks`);
  return json.map((t, n) => {
    const at = `${file}: task #${n + 1}${isObject(t) && t.id !== undefined ? ` (id ${JSON.stringify(t.id)})` : ""}`;
    if (!isObject(t) || !isObject(t.data)) throw new InteropError(`${at}: data: expected an object`);
    const data = t.data;
    let responses: string[], itemIds: string[];
    if (task === "pairwise") {
      responses = [text(data, "answer1", at), text(data, "answer2", at)];
      itemIds = [];
    } else {
      if (!Array.isArray(data.items) || data.items.length < 2) throw new InteropError(`${at}: data.items: expected a list of 2+ {"id", "body"}`);
      const items = data.items.map((x, i) => {
        if (!isObject(x) || (typeof x.id !== "string" && typeof x.id !== "number") || typeof x.body !== "string") {
          throw new InteropError(`${at}: data.items[${i}]: expected {"id": string, "body": string}`);
        }
        return { id: String(x.id), body: x.body };
      });
      responses = items.map((x) => x.body);
      itemIds = items.map((x) => x.id);
    }
    const annotations = t.annotations ?? [];
    if (!Array.isArray(annotations)) throw new InteropError(`${at}: annotations: expected an array`);
    const answers: ForeignAnswer[] = [];
    annotations.forEach((a, k) => {
      const aat = `${at}: annotations[${k}]`;
      if (!isObject(a)) throw new InteropError(`${aat}: expected an object`);
      if (a.was_cancelled === true) return;
      const name = annotator(a, aat);
      if (answers.some((x) => x.annotator === name)) throw new InteropError(`${aat}: ${JSON.stringify(name)} annotated this task twice`);
      answers.push({ annotator: name, ...judgement(task, a.result, itemIds, aat) });
    });
    // Our own export keeps the item's id in data.external_id; Label Studio's task ids are its own.
    const id = typeof data.external_id === "string" ? data.external_id : t.id === undefined ? undefined : String(t.id);
    if (data.policy !== undefined && typeof data.policy !== "string") throw new InteropError(`${at}: data.policy: expected a string`);
    const suggestion = predictionOf(task, t.predictions, itemIds, at);
    return {
      item: {
        ...(id !== undefined ? { id } : {}), prompt: text(data, "prompt", at), responses,
        ...(suggestion ? { suggestion } : {}), ...(data.policy !== undefined ? { policy: data.policy } : {}),
      },
      answers,
    };
  });
}

function predictionOf(task: Task, predictions: unknown, itemIds: string[], at: string): Suggestion | undefined {
  if (predictions === undefined || predictions === null) return undefined;
  if (!Array.isArray(predictions)) throw new InteropError(`${at}: predictions: expected an array`);
  const p = predictions[0];
  if (p === undefined) return undefined;
  const pat = `${at}: predictions[0]`;
  if (!isObject(p)) throw new InteropError(`${pat}: expected {"model_version", "score", "result"}`);
  if (p.score !== undefined && p.score !== null && !(typeof p.score === "number" && p.score >= 0 && p.score <= 1)) throw new InteropError(`${pat}: score: expected a number from 0 to 1`);
  if (p.model_version !== undefined && p.model_version !== null && typeof p.model_version !== "string") throw new InteropError(`${pat}: model_version: expected a string`);
  return {
    ranking: judgement(task, p.result, itemIds, pat).ranking,
    ...(typeof p.score === "number" ? { confidence: p.score } : {}), ...(typeof p.model_version === "string" ? { judge: p.model_version } : {}),
  };
}

const promptText = (p: Prompt, at: string) => {
  if (typeof p !== "string") throw new InteropError(`${at}: a chat prompt has no Label Studio text field; export it with --format preference or ranking`);
  return p;
};

/** Label Studio tasks, and how many tied answers had to be left out (neither tag records a tie). */
export function renderLabelStudio(items: ForeignItem[], task: Task): { tasks: object[]; leftOut: number } {
  checkTask(task, "Label Studio");
  let leftOut = 0;
  const tasks = items.map((f, n) => {
    const at = `item ${JSON.stringify(f.item.id ?? `#${n + 1}`)}`;
    const prompt = promptText(f.item.prompt, at);
    const ids = f.item.responses.map((_, i) => `r${i}`);
    const data = task === "pairwise"
      ? { prompt, answer1: f.item.responses[0]!, answer2: f.item.responses[1]! }
      : { prompt, items: f.item.responses.map((body, i) => ({ id: ids[i]!, body })) };
    const result = (ranking: number[], origin: "manual" | "prediction") => [task === "pairwise"
      ? { ...PAIRWISE, type: "pairwise", origin, value: { selected: ranking[0] === 0 ? "left" : "right" } }
      : { ...RANKER, type: "ranker", origin, value: { ranker: { [RANKER.from_name]: ranking.map((i) => ids[i]!) } } }];
    const annotations = f.answers.filter((a) => a.ties.length === 0 || (leftOut++, false)).map((a, k) => ({
      id: k + 1, completed_by: { email: a.annotator }, was_cancelled: false, result: result(a.ranking, "manual"),
    }));
    const s = f.item.suggestion;
    const predictions = s && "ranking" in s && !s.ties?.length
      ? [{ ...(s.judge !== undefined ? { model_version: s.judge } : {}), ...(s.confidence !== undefined ? { score: s.confidence } : {}), result: result(s.ranking, "prediction") }]
      : [];
    const extra = { ...(f.item.id !== undefined ? { external_id: f.item.id } : {}), ...(f.item.policy !== undefined ? { policy: f.item.policy } : {}) };
    return { id: n + 1, data: { ...data, ...extra }, annotations, ...(predictions.length ? { predictions } : {}) };
  });
  return { tasks, leftOut };
}
