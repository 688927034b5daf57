// Export as JSON lines that the reward-model and DPO trainers read directly.
//
// format=preference (TRL's preference format), one line per decided response pair:
//   {"prompt", "chosen", "rejected", "item_id", "external_id", ...}
//   prompt/chosen/rejected are strings for text prompts; for chat prompts `prompt` is the message
//   list and chosen/rejected are [{"role": "assistant", "content": text}] (TRL's conversational form).
//   aggregate=all: every labeler's answer, with "labeler", "labeler_id", "answer_id"; a K-response
//   ranking or rating yields every pair it orders strictly (ties give no pair).
//   aggregate=majority: one line per pair that a strict majority of the item's labelers decided
//   the same way, with "labelers" (names) and "votes": {"chosen", "rejected", "tie"}.
// format=ranking, one line per answer (all) or per item (majority):
//   {"prompt", "responses": [in import order], "ranking": [indices into responses, best first],
//    "ties": [[i, j], ...] (present only when some responses tie), "item_id", "external_id", ...}
//   responses are strings for text prompts and [{"role": "assistant", "content": text}] for chat
//   prompts, as chosen/rejected are: the reward trainer renders prompt + response either way.
//   rating tasks add "ratings": [1..7 per response] (majority: the mean), ordered by rating.
//   aggregate=majority orders responses by their mean score over labelers (mean rank for rankings),
//   with "labelers"; equal means are ties.
// Items imported with a `policy` (what wrote the responses) carry it on every line.
// Skips and gold items are left out: gold answers are known, not collected.
import type { ChatMessage, Prompt, Task } from "../shared/schema.ts";
import { outcome, scores } from "./answers.ts";
import type { Store } from "./db.ts";
import { loadProject, type LoadedAnswer, type LoadedItem } from "./stats.ts";
import type { ProjectRow } from "./projects.ts";

export type ExportFormat = "preference" | "ranking";
export type ExportAggregate = "all" | "majority";

const completion = (prompt: Prompt, text: string): string | ChatMessage[] =>
  typeof prompt === "string" ? text : [{ role: "assistant", content: text }];

const policyOf = (item: LoadedItem) => (item.policy !== null ? { policy: item.policy } : {});

const pairsOf = (n: number) => Array.from({ length: n }, (_, i) => Array.from({ length: n - i - 1 }, (_, k) => [i, i + k + 1] as const)).flat();

function preferenceLines(item: LoadedItem, answers: LoadedAnswer[], aggregate: ExportAggregate): object[] {
  const prompt = item.prompt as Prompt;
  const ids = item.responses.map((r) => r.id);
  const base = { item_id: item.id, external_id: item.external_id, ...policyOf(item) };
  const line = (winner: number, loser: number) => ({
    prompt, chosen: completion(prompt, item.responses[winner]!.text), rejected: completion(prompt, item.responses[loser]!.text), ...base,
  });
  const out: object[] = [];
  const scored = answers.map((a) => ({ a, s: scores(a)! }));
  for (const [i, j] of pairsOf(ids.length)) {
    const outcomes = scored.map(({ s }) => outcome(s, ids[i]!, ids[j]!));
    if (aggregate === "all") {
      scored.forEach(({ a }, k) => {
        const o = outcomes[k]!;
        if (o !== 0) out.push({ ...(o > 0 ? line(i, j) : line(j, i)), labeler: a.labeler, labeler_id: a.labeler_id, answer_id: a.id });
      });
      continue;
    }
    const wins = outcomes.filter((o) => o > 0).length, losses = outcomes.filter((o) => o < 0).length;
    const tie = outcomes.length - wins - losses;
    if (Math.max(wins, losses) * 2 <= outcomes.length) continue;
    const [w, l] = wins > losses ? [i, j] : [j, i];
    out.push({ ...line(w, l), labelers: answers.map((a) => a.labeler), votes: { chosen: Math.max(wins, losses), rejected: Math.min(wins, losses), tie } });
  }
  return out;
}

// Indices best first, and the adjacent pairs with equal scores.
function order(values: number[]): { ranking: number[]; ties: [number, number][] } {
  const ranking = values.map((_, i) => i).sort((a, b) => values[b]! - values[a]! || a - b);
  const ties: [number, number][] = [];
  for (let k = 1; k < ranking.length; k++) if (values[ranking[k]!] === values[ranking[k - 1]!]) ties.push([ranking[k - 1]!, ranking[k]!]);
  return { ranking, ties };
}

function rankingLines(task: Task, item: LoadedItem, answers: LoadedAnswer[], aggregate: ExportAggregate): object[] {
  const ids = item.responses.map((r) => r.id);
  const prompt = item.prompt as Prompt;
  const base = { prompt, responses: item.responses.map((r) => completion(prompt, r.text)) };
  const line = (values: number[]) => {
    const { ranking, ties } = order(values);
    return { ...base, ranking, ...(ties.length ? { ties } : {}), ...(task === "rating" ? { ratings: values } : {}), item_id: item.id, external_id: item.external_id, ...policyOf(item) };
  };
  const perAnswer = answers.map((a) => ids.map((id) => scores(a)!.get(id)!));
  if (aggregate === "all") return answers.map((a, k) => ({ ...line(perAnswer[k]!), labeler: a.labeler, labeler_id: a.labeler_id, answer_id: a.id }));
  if (answers.length === 0) return [];
  const means = ids.map((_, i) => perAnswer.reduce((s, v) => s + v[i]!, 0) / answers.length);
  return [{ ...line(means), labelers: answers.map((a) => a.labeler) }];
}

export async function exportLines(store: Store, project: ProjectRow, format: ExportFormat | undefined, aggregate: ExportAggregate): Promise<string[]> {
  const task = project.task as Task;
  const fmt = format ?? (task === "pairwise" ? "preference" : "ranking");
  const { items, answers } = await loadProject(store, project);
  const byItem = new Map<string, LoadedAnswer[]>();
  for (const a of answers) if (!a.skip) byItem.set(a.item_id, [...(byItem.get(a.item_id) ?? []), a]);
  const lines: string[] = [];
  for (const item of items.values()) {
    if (item.gold) continue;
    const given = byItem.get(item.id) ?? [];
    const objs = fmt === "preference" ? preferenceLines(item, given, aggregate) : rankingLines(task, item, given, aggregate);
    for (const o of objs) lines.push(JSON.stringify(o));
  }
  return lines;
}
