// How often the items' AI suggestions agree with people: on each response pair, the suggestion's
// outcome against the strict majority of the item's non-skip answers (pairs without one are left
// out). Cohen's kappa over first better / second better / tie counts every pair in both
// orientations (as `rlhf judge` does with people's labels), so the order in which an item's
// responses were imported cannot move it.
import type { ProjectStats } from "../shared/schema.ts";
import { outcome } from "./answers.ts";
import { cohensKappa } from "./agreement.ts";

/** One item: its response ids, the suggestion's scores and each answer's scores (higher is better). */
export interface SuggestedItem { responseIds: string[]; suggestion: Map<string, number>; answers: Map<string, number>[] }

type Counts = Omit<ProjectStats["ai_agreement"], "judges" | "suggested_items">;

const category = (o: number) => (o > 0 ? 0 : o < 0 ? 1 : 2); // first better, second better, tie

export function aiAgreement(items: SuggestedItem[]): Counts {
  const confusion = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]; // [people][suggestion]
  let pairs = 0, agreed = 0, counted = 0;
  for (const { responseIds: ids, suggestion, answers } of items) {
    let used = false;
    for (let i = 0; i < ids.length; i++) for (let j = i + 1; j < ids.length; j++) {
      const votes = [0, 0, 0];
      for (const a of answers) votes[category(outcome(a, ids[i]!, ids[j]!))]!++;
      const majority = votes.findIndex((v) => v * 2 > answers.length);
      if (majority < 0) continue;
      const ai = category(outcome(suggestion, ids[i]!, ids[j]!));
      const flip = (c: number) => (c === 2 ? 2 : 1 - c);
      confusion[majority]![ai]!++;
      confusion[flip(majority)]![flip(ai)]!++;
      pairs++;
      if (majority === ai) agreed++;
      used = true;
    }
    if (used) counted++;
  }
  return { items: counted, pairs, agreement: pairs ? agreed / pairs : null, cohen_kappa: pairs ? cohensKappa(confusion) : null };
}
