// A judge's verdict on one presentation order, parsed strictly, and the two orders combined.
//
// Every comparison is asked twice, the responses once as (A, B) and once as (B, A), so that a
// judge's preference for a position cancels (Zheng et al. 2023 found GPT-4 favouring the first
// answer). Each order gives pA = P(answer A is better): 1 / 0 / ½ for a text verdict [[A]] / [[B]] /
// [[C]], the normalised probability of the "A" answer for a log-probability judge. The combined
// rule, in the first response's terms:
//   p          = (pA of order ab + (1 − pA of order ba)) / 2      P(first response better)
//   label      = the side both orders name; one order a tie and the other a side: that side;
//                the orders naming opposite sides, or both a tie: a tie
//   confidence = the mean over both orders of the probability given to the chosen response
// So a text judge that agrees with itself labels with confidence 1, one tie and one side gives
// 0.75, and a judge that always answers "A" (pure position bias) yields a tie every time.

export type Verdict = "A" | "B" | "C";

/** One order's answer: the verdict, the judge's explanation (null for log-probability judges), pA. */
export interface OrderVerdict {
  verdict: Verdict;
  rationale: string | null;
  /** P(answer A better): 1, 0 or ½ for a text verdict; the normalised answer probability otherwise. */
  p_a: number;
}

/** The verdict markers of a judge_prompts output_format such as "[[A]]": the same text with A, B, C. */
export function verdictMarkers(outputFormat: string): Record<Verdict, string> | null {
  if (!/\[\[A\]\]/.test(outputFormat)) return null;
  return { A: "[[A]]", B: "[[B]]", C: "[[C]]" };
}

/**
 * The verdict in a judge's text when exactly one of [[A]], [[B]], [[C]] appears in it (repeated or
 * not); null when none does or several different ones do (a text quoting the instructions, "[[A]]
 * if A is better...", is ambiguous and never guessed from).
 */
export function parseVerdict(text: string): Verdict | null {
  const found = new Set<Verdict>();
  for (const m of text.matchAll(/\[\[([ABC])\]\]/g)) found.add(m[1] as Verdict);
  return found.size === 1 ? [...found][0]! : null;
}

export const textVerdict = (verdict: Verdict, rationale: string): OrderVerdict => ({ verdict, rationale, p_a: verdict === "A" ? 1 : verdict === "B" ? 0 : 0.5 });

/** The comparison's outcome in terms of (first, second) response. */
export interface Combined {
  /** 0: the first response is better, 1: the second, null: a tie (or the orders disagree). */
  winner: 0 | 1 | null;
  /** P(first response better), averaged over both orders. */
  p_first: number;
  /** Mean probability given to the chosen response (for a tie: to the side p_first leans to). */
  confidence: number;
}

type Side = 0 | 1 | null;

export function combineOrders(ab: OrderVerdict, ba: OrderVerdict): Combined {
  const sideOf = (v: Verdict, swapped: boolean): Side => (v === "C" ? null : (v === "A") !== swapped ? 0 : 1);
  const [x, y] = [sideOf(ab.verdict, false), sideOf(ba.verdict, true)];
  const winner: Side = x === y ? x : x === null ? y : y === null ? x : null;
  const p_first = (ab.p_a + (1 - ba.p_a)) / 2;
  const leansFirst = winner === 0 || (winner === null && p_first >= 0.5);
  return { winner, p_first, confidence: leansFirst ? p_first : 1 - p_first };
}
