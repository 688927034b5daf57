// What an answer means: validation against the item's task and responses, and reduction of every
// task type to per-response scores (higher is better), from which stats and exports are derived.
import type { GoldAnswer, Suggestion, Task } from "../shared/schema.ts";
import { HttpError } from "./errors.ts";

export interface Judgement {
  skip: boolean;
  ranking: string[] | null; // response ids, best first
  ties: [string, string][] | null;
  ratings: Record<string, number> | null;
}

const bad = (msg: string) => new HttpError(400, msg);

export function validateJudgement(task: Task, responseIds: string[], a: Omit<Judgement, "skip"> & { skip?: boolean }): Judgement {
  if (a.skip) return { skip: true, ranking: null, ties: null, ratings: null };
  const known = new Set(responseIds);
  if (task === "rating") {
    if (!a.ratings) throw bad("a rating task needs `ratings`");
    const keys = Object.keys(a.ratings);
    if (keys.length !== known.size || !keys.every((k) => known.has(k))) throw bad("`ratings` must score every response id of the item exactly once");
    return { skip: false, ranking: null, ties: null, ratings: a.ratings };
  }
  if (!a.ranking) throw bad(`a ${task} task needs \`ranking\``);
  if (a.ranking.length !== known.size || new Set(a.ranking).size !== known.size || !a.ranking.every((r) => known.has(r))) {
    throw bad("`ranking` must list every response id of the item exactly once");
  }
  const ties = a.ties ?? [];
  for (const [x, y] of ties) {
    if (!known.has(x) || !known.has(y) || x === y) throw bad("`ties` must pair two different response ids of the item");
  }
  tieGroups(a.ranking, ties); // throws when a tie group is not contiguous in the ranking
  return { skip: false, ranking: a.ranking, ties: ties.length ? ties : null, ratings: null };
}

// Ranks, best = 0, tied responses share a rank. Tied responses must sit next to each other in the ranking.
function tieGroups(ranking: string[], ties: [string, string][]): Map<string, number> {
  const parent = new Map(ranking.map((r) => [r, r]));
  const find = (x: string): string => (parent.get(x) === x ? x : find(parent.get(x)!));
  for (const [x, y] of ties) parent.set(find(x), find(y));
  const rank = new Map<string, number>();
  const groupRank = new Map<string, number>();
  let next = 0;
  ranking.forEach((r, i) => {
    const g = find(r);
    if (!groupRank.has(g)) groupRank.set(g, next++);
    else if (find(ranking[i - 1]!) !== g) throw bad("tied responses must be adjacent in `ranking`");
    rank.set(r, groupRank.get(g)!);
  });
  return rank;
}

// Per-response score, higher is better: minus the rank for rankings, the Likert value for ratings.
export function scores(j: Judgement): Map<string, number> | null {
  if (j.skip) return null;
  if (j.ratings) return new Map(Object.entries(j.ratings));
  const ranks = tieGroups(j.ranking!, j.ties ?? []);
  return new Map([...ranks].map(([id, r]) => [id, -r]));
}

// Rank per response (0 = best, ties share), the values Krippendorff's alpha compares for rankings.
export const ranks = (j: Judgement) => (j.ranking ? tieGroups(j.ranking, j.ties ?? []) : null);

// 1 when a beats b, -1 when b beats a, 0 for a tie.
export const outcome = (s: Map<string, number>, a: string, b: string) => Math.sign(s.get(a)! - s.get(b)!);

// Gold answers and suggestions are written by response position at import; this turns one into a
// judgement over ids. `what` names it in errors. A suggestion's confidence, judge and rationale are
// ignored here.
export function judgementByPosition(task: Task, gold: GoldAnswer | Suggestion, responseIds: string[], what: "gold answer" | "suggestion" = "gold answer"): Judgement {
  const id = (i: number) => {
    if (i >= responseIds.length) throw bad(`${what} refers to response ${i}, but the item has ${responseIds.length}`);
    return responseIds[i]!;
  };
  if ("ratings" in gold) {
    if (gold.ratings.length !== responseIds.length) throw bad(`${what} \`ratings\` needs one score per response`);
    return validateJudgement(task, responseIds, { ranking: null, ties: null, ratings: Object.fromEntries(gold.ratings.map((v, i) => [id(i), v])) });
  }
  return validateJudgement(task, responseIds, {
    ranking: gold.ranking.map(id),
    ties: (gold.ties ?? []).map(([a, b]) => [id(a), id(b)] as [string, string]),
    ratings: null,
  });
}
