// Quality numbers for a project, computed in memory from its answers (see ProjectStats in the
// shared schema for what each number means). Every task reduces to per-response scores, so
// majority, gold and position-bias checks all compare the outcome of response pairs.
import type { GoldAnswer, LabelerStats, ProjectStats, Suggestion, Task } from "../shared/schema.ts";
import { aiAgreement, type SuggestedItem } from "./ai-agreement.ts";
import { judgementByPosition, outcome, ranks, scores, type Judgement } from "./answers.ts";
import { binomialTestHalf, fleissKappa, krippendorffAlpha, median } from "./agreement.ts";
import type { Store } from "./db.ts";
import type { ProjectRow } from "./projects.ts";

export interface LoadedAnswer extends Judgement {
  id: string; item_id: string; labeler_id: string; labeler: string; shown_order: string[];
  served_at: number; answered_at: number; rationale: string | null;
}
export interface LoadedItem {
  id: string; external_id: string | null; prompt: unknown; responses: { id: string; text: string }[]; gold: GoldAnswer | null;
  suggestion: Suggestion | null; policy: string | null;
}

// Everything stats and export need, in two passes over the project's rows.
export async function loadProject(store: Store, project: ProjectRow): Promise<{ items: Map<string, LoadedItem>; answers: LoadedAnswer[] }> {
  const itemRows = await store.db.selectFrom("items").select(["id", "external_id", "prompt", "gold", "seq", "suggestion", "policy"])
    .where("project_id", "=", project.id).orderBy("seq").execute();
  const responseRows = await store.db.selectFrom("responses as r").innerJoin("items as i", "i.id", "r.item_id")
    .select(["r.id", "r.item_id", "r.text", "r.position"]).where("i.project_id", "=", project.id)
    .orderBy("r.item_id").orderBy("r.position").execute();
  const items = new Map<string, LoadedItem>(itemRows.map((i) => [i.id, {
    id: i.id, external_id: i.external_id, prompt: JSON.parse(i.prompt), responses: [], gold: i.gold ? JSON.parse(i.gold) : null,
    suggestion: i.suggestion ? JSON.parse(i.suggestion) : null, policy: i.policy,
  }]));
  for (const r of responseRows) items.get(r.item_id)!.responses.push({ id: r.id, text: r.text });
  const answerRows = await store.db.selectFrom("answers as a").innerJoin("users as u", "u.id", "a.labeler_id")
    .selectAll("a").select("u.name as labeler").where("a.project_id", "=", project.id).orderBy("a.answered_at").execute();
  const answers = answerRows.map((a) => ({
    id: a.id, item_id: a.item_id, labeler_id: a.labeler_id, labeler: a.labeler, skip: a.skip === 1,
    ranking: a.ranking ? JSON.parse(a.ranking) : null, ties: a.ties ? JSON.parse(a.ties) : null,
    ratings: a.ratings ? JSON.parse(a.ratings) : null, rationale: a.rationale,
    shown_order: JSON.parse(a.shown_order), served_at: a.served_at, answered_at: a.answered_at,
  }));
  return { items, answers };
}

function pairsOf(ids: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < ids.length; i++) for (let j = i + 1; j < ids.length; j++) out.push([ids[i]!, ids[j]!]);
  return out;
}

export async function projectStats(store: Store, project: ProjectRow): Promise<ProjectStats> {
  const task = project.task as Task;
  const { items, answers } = await loadProject(store, project);
  const byItem = new Map<string, LoadedAnswer[]>();
  for (const a of answers) byItem.set(a.item_id, [...(byItem.get(a.item_id) ?? []), a]);

  const per = new Map<string, LabelerStats & { times: number[]; majHits: number; goldHits: number }>();
  const labeler = (a: LoadedAnswer) => {
    if (!per.has(a.labeler_id)) per.set(a.labeler_id, {
      labeler_id: a.labeler_id, name: a.labeler, answers: 0, skips: 0, majority_agreement: null, majority_pairs: 0,
      gold_agreement: null, gold_pairs: 0, median_seconds: null, times: [], majHits: 0, goldHits: 0,
    });
    return per.get(a.labeler_id)!;
  };

  const fleissRows: number[][] = [];
  const alphaUnits: number[][] = [];
  let firstWins = 0, biasPairs = 0, complete = 0, goldItems = 0, totalItems = 0, itemsInAgreement = 0;
  const suggested: SuggestedItem[] = [];
  const judges = new Set<string>();
  const policies = new Map<string, ProjectStats["policies"][number]>();
  for (const item of items.values()) {
    const ids = item.responses.map((r) => r.id);
    const given = (byItem.get(item.id) ?? []).filter((a) => !a.skip);
    for (const a of byItem.get(item.id) ?? []) {
      const l = labeler(a);
      l.answers++;
      if (a.skip) l.skips++;
      else l.times.push((a.answered_at - a.served_at) / 1000);
    }
    const scored = given.map((a) => ({ a, s: scores(a)! }));
    for (const { a, s } of scored) {
      for (const [x, y] of pairsOf(a.shown_order)) {
        const o = outcome(s, x, y);
        if (o !== 0) { biasPairs++; if (o > 0) firstWins++; }
      }
    }
    if (item.gold) {
      goldItems++;
      const gold = scores(judgementByPosition(task, item.gold, ids))!;
      for (const { a, s } of scored) {
        const l = labeler(a);
        for (const [x, y] of pairsOf(ids)) { l.gold_pairs++; if (outcome(s, x, y) === outcome(gold, x, y)) l.goldHits++; }
      }
      continue; // gold items do not enter agreement or progress
    }
    totalItems++;
    if (given.length >= project.overlap) complete++;
    if (item.policy !== null) {
      const p = policies.get(item.policy) ?? { policy: item.policy, items: 0, complete_items: 0, answers: 0 };
      p.items++;
      p.answers += given.length;
      if (given.length >= project.overlap) p.complete_items++;
      policies.set(item.policy, p);
    }
    if (item.suggestion) {
      suggested.push({ responseIds: ids, suggestion: scores(judgementByPosition(task, item.suggestion, ids, "suggestion"))!, answers: scored.map(({ s }) => s) });
      if (item.suggestion.judge !== undefined) judges.add(item.suggestion.judge);
    }
    if (given.length < 2) continue;
    itemsInAgreement++;
    if (task === "pairwise") {
      const row = [0, 0, 0]; // A preferred, B preferred, tie
      for (const { s } of scored) {
        const o = outcome(s, ids[0]!, ids[1]!);
        row[o > 0 ? 0 : o < 0 ? 1 : 2]!++;
      }
      fleissRows.push(row);
    } else {
      for (const id of ids) alphaUnits.push(given.map((a) => (task === "ranking" ? ranks(a)!.get(id)! : a.ratings![id]!)));
    }
    // Leave-one-out majority: does each labeler agree with the strict majority of the others?
    for (const [x, y] of pairsOf(ids)) {
      const outcomes = scored.map(({ s }) => outcome(s, x, y));
      scored.forEach(({ a }, i) => {
        const votes = new Map<number, number>();
        outcomes.forEach((o, k) => { if (k !== i) votes.set(o, (votes.get(o) ?? 0) + 1); });
        const [top, count] = [...votes].sort((p, q) => q[1] - p[1])[0]!;
        if (count * 2 <= outcomes.length - 1) return;
        const l = labeler(a);
        l.majority_pairs++;
        if (outcomes[i] === top) l.majHits++;
      });
    }
  }
  const labelers = [...per.values()].map(({ times, majHits, goldHits, ...l }) => ({
    ...l,
    majority_agreement: l.majority_pairs ? majHits / l.majority_pairs : null,
    gold_agreement: l.gold_pairs ? goldHits / l.gold_pairs : null,
    median_seconds: median(times),
  }));
  const metric = task === "pairwise" ? "fleiss_kappa" : task === "ranking" ? "krippendorff_alpha_ordinal" : "krippendorff_alpha_interval";
  const value = task === "pairwise" ? fleissKappa(fleissRows) : krippendorffAlpha(alphaUnits, task === "ranking" ? "ordinal" : "interval");
  return {
    project_id: project.id, task, overlap: project.overlap,
    progress: { total_items: totalItems, complete_items: complete, gold_items: goldItems, answers: answers.length, skips: answers.filter((a) => a.skip).length },
    agreement: { metric, value, items: itemsInAgreement },
    median_seconds: median(answers.filter((a) => !a.skip).map((a) => (a.answered_at - a.served_at) / 1000)),
    position_bias: { pairs: biasPairs, first_shown_win_rate: biasPairs ? firstWins / biasPairs : null, p_value: binomialTestHalf(firstWins, biasPairs) },
    labelers: labelers.sort((p, q) => p.name.localeCompare(q.name)),
    ai_agreement: { suggested_items: suggested.length, ...aiAgreement(suggested), judges: [...judges].sort() },
    policies: [...policies.values()].sort((p, q) => p.policy.localeCompare(q.policy)),
  };
}
