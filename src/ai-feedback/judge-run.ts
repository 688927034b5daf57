// rlhf judge's work: every pair of responses of every item compared in both orders (cached,
// concurrency-limited), the orders combined (verdict.ts), and the labels turned into preference
// records, rankings and an agreement report against people's labels where the data has them.
import { createHash } from "node:crypto";
import { cohensKappa } from "../feedback/server/agreement.ts";
import { JudgeCache } from "./judge-cache.ts";
import { shownText, type JudgeItem, type Text } from "./judge-data.ts";
import { renderJudgeMessages, type JudgeTemplate } from "./judge-template.ts";
import { ItemFailure } from "./item-failure.ts";
import type { Judge } from "./judges.ts";
import { concurrencyLimit, RetryableError } from "./retry.ts";
import { combineOrders, type Combined, type OrderVerdict } from "./verdict.ts";

/** Responses i < j of item `item`, judged under `principle` (null: the template's default). */
export interface Comparison {
  item: number;
  i: number;
  j: number;
  principle: string | null;
}

export type ComparisonResult =
  | { comparison: Comparison; ab: OrderVerdict; ba: OrderVerdict; combined: Combined }
  | { comparison: Comparison; failure: string };

export interface JudgeCounts {
  requests: number;
  cached: number;
}

/** All K(K−1)/2 pairs of every item, in file order; principles[n] goes to the n-th comparison. */
export function comparisonsOf(items: JudgeItem[]): Omit<Comparison, "principle">[] {
  return items.flatMap((item, index) => item.responses.flatMap((_, i) => item.responses.slice(i + 1).map((__, d) => ({ item: index, i, j: i + 1 + d }))));
}

export const judgeName = (judge: Judge) => (judge.model ? `${judge.model}@${judge.source}` : judge.source);

export async function runComparisons(options: {
  items: JudgeItem[];
  comparisons: Comparison[];
  judge: Judge;
  template: JudgeTemplate;
  cache: JudgeCache;
  concurrency: number;
  onDone?: (done: number, failed: number, counts: JudgeCounts) => void;
}): Promise<{ results: ComparisonResult[]; counts: JudgeCounts }> {
  const { items, judge, template, cache } = options;
  const limit = concurrencyLimit(options.concurrency);
  const templateHash = createHash("sha256").update(JSON.stringify([template.system_prompt, template.prompt_template, template.output_format])).digest("hex");
  const counts: JudgeCounts = { requests: 0, cached: 0 };
  let done = 0;
  let failed = 0;

  const ask = async (question: string, a: Text, b: Text, principle: string | null): Promise<OrderVerdict> => {
    const [answerA, answerB] = [shownText(a), shownText(b)];
    const key = JudgeCache.key([judge.source, judge.model, templateHash, question, answerA, answerB, principle]);
    const hit = cache.get(key);
    if (hit) {
      counts.cached++;
      return hit;
    }
    return limit(async () => {
      counts.requests++;
      const answer = await judge.ask(renderJudgeMessages(template, question, answerA, answerB, principle));
      await cache.put(key, answer);
      return answer;
    });
  };

  const results = await Promise.all(options.comparisons.map(async (comparison): Promise<ComparisonResult> => {
    const item = items[comparison.item]!;
    const question = shownText(item.prompt);
    const [x, y] = [item.responses[comparison.i]!, item.responses[comparison.j]!];
    let result: ComparisonResult;
    try {
      const [ab, ba] = await Promise.all([ask(question, x, y, comparison.principle), ask(question, y, x, comparison.principle)]);
      result = { comparison, ab, ba, combined: combineOrders(ab, ba) };
    } catch (err) {
      if (!(err instanceof RetryableError || err instanceof ItemFailure)) throw err;
      failed++;
      result = { comparison, failure: err.message };
    }
    options.onDone?.(++done, failed, counts);
    return result;
  }));
  return { results, counts };
}

/** A judged comparison as a preference record (ties and order disagreements with "tie": true). */
export function pairRecord(item: JudgeItem, r: Extract<ComparisonResult, { combined: Combined }>, judge: string, kWay: boolean): Record<string, unknown> {
  const { i, j, principle } = r.comparison;
  const firstChosen = r.combined.winner === 0 || (r.combined.winner === null && r.combined.p_first >= 0.5);
  const [chosen, rejected] = firstChosen ? [i, j] : [j, i];
  // "ab": the verdict when the chosen response was shown as A; "ba": when it was shown as B.
  const [asA, asB] = firstChosen ? [r.ab, r.ba] : [r.ba, r.ab];
  return {
    ...(item.id !== undefined ? { id: item.id } : {}),
    prompt: item.prompt,
    chosen: item.responses[chosen],
    rejected: item.responses[rejected],
    ...(r.combined.winner === null ? { tie: true } : {}),
    judge,
    confidence: Number(r.combined.confidence.toFixed(6)),
    order: { ab: asA.verdict, ba: asB.verdict },
    rationale: { ab: asA.rationale, ba: asB.rationale },
    ...(principle !== null ? { principle } : {}),
    ...(kWay ? { responses_index: [chosen, rejected] } : {}),
  };
}

/**
 * An item's responses ranked by Copeland score (wins + ½ per tie over its K−1 comparisons), equal
 * scores ordered by the summed probability of being better (a soft Borda count); responses equal
 * on both are listed in `ties`. The same record shape as the feedback app's export and rlhf pairs
 * --format ranking, which rlhf rm train reads.
 */
export function rankingRecord(item: JudgeItem, results: Extract<ComparisonResult, { combined: Combined }>[], judge: string): Record<string, unknown> {
  const k = item.responses.length;
  const wins = new Array<number>(k).fill(0);
  const soft = new Array<number>(k).fill(0);
  for (const { comparison: { i, j }, combined } of results) {
    if (combined.winner === null) {
      wins[i]! += 0.5;
      wins[j]! += 0.5;
    } else wins[combined.winner === 0 ? i : j]! += 1;
    soft[i]! += combined.p_first;
    soft[j]! += 1 - combined.p_first;
  }
  const same = (a: number, b: number) => wins[a] === wins[b] && Math.abs(soft[a]! - soft[b]!) < 1e-9;
  const ranking = Array.from({ length: k }, (_, i) => i).sort((a, b) => wins[b]! - wins[a]! || soft[b]! - soft[a]! || a - b);
  const ties: [number, number][] = [];
  ranking.forEach((a, n) => ranking.slice(n + 1).forEach((b) => { if (same(a, b)) ties.push([a, b]); }));
  return { ...(item.id !== undefined ? { id: item.id } : {}), prompt: item.prompt, responses: item.responses, ranking, ...(ties.length ? { ties } : {}), scores: wins, judge };
}

export interface Agreement {
  /** Pairs people preferred one response of that the judge labelled (failed comparisons left out). */
  pairs: number;
  /** Share of those where the judge chose as people did (a judge's tie counts as disagreeing). */
  agreement: number;
  judge_ties: number;
  /** The same share among the pairs the judge did not call a tie. */
  agreement_without_ties: number | null;
  /**
   * Share of the pairs where the order-averaged probability (p_first) leans to people's choice, ties
   * included: a weak judge whose verdicts cancel out as ties may still lean the right way.
   */
  agreement_by_probability: number;
  /**
   * Cohen's kappa between judge (first / second / tie) and people (first / second), each pair counted
   * in both orientations so that both of people's labels occur equally (a rater who always says
   * "first" has kappa 0 whatever the other does); without judge ties it is 2·agreement − 1.
   */
  cohen_kappa: number | null;
}

export function agreementWithPeople(items: JudgeItem[], results: ComparisonResult[]): Agreement | null {
  const confusion = [[0, 0, 0], [0, 0, 0]]; // [people: first, second][judge: first, second, tie]
  let pairs = 0, agreed = 0, ties = 0, leaned = 0;
  for (const r of results) {
    if (!("combined" in r)) continue;
    const { item, i, j } = r.comparison;
    const human = items[item]!.human.find((h) => (h.chosen === i && h.rejected === j) || (h.chosen === j && h.rejected === i));
    if (!human) continue;
    const people = human.chosen === i ? 0 : 1;
    const judge = r.combined.winner ?? 2;
    pairs++;
    if (judge === 2) ties++;
    if (judge === people) agreed++;
    if (people === 0 ? r.combined.p_first > 0.5 : r.combined.p_first < 0.5) leaned++;
    confusion[people]![judge]! += 1;
    confusion[1 - people]![judge === 2 ? 2 : 1 - judge]! += 1; // the mirrored orientation
  }
  if (pairs === 0) return null;
  const square = [...confusion, [0, 0, 0]];
  return {
    pairs,
    agreement: agreed / pairs,
    judge_ties: ties,
    agreement_without_ties: pairs > ties ? agreed / (pairs - ties) : null,
    agreement_by_probability: leaned / pairs,
    cohen_kappa: cohensKappa(square),
  };
}
