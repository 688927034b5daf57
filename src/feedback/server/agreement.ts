// Inter-annotator agreement, pure functions over plain numbers (tested against textbook examples).

// Fleiss' kappa. counts[i][j] = how many raters put item i in category j. Items may have different
// numbers of raters (the usual generalisation); items with fewer than 2 are ignored.
// Returns null when chance agreement is 1 (every rating in one category): kappa is undefined.
export function fleissKappa(counts: number[][]): number | null {
  const rows = counts.filter((r) => sum(r) >= 2);
  if (rows.length === 0) return null;
  const total = sum(rows.map(sum));
  const pBar = mean(rows.map((r) => {
    const n = sum(r);
    return (sum(r.map((c) => c * c)) - n) / (n * (n - 1));
  }));
  const k = rows[0]!.length;
  const pe = sum(Array.from({ length: k }, (_, j) => (sum(rows.map((r) => r[j]!)) / total) ** 2));
  return pe === 1 ? null : (pBar - pe) / (1 - pe);
}

// Cohen's kappa of two raters from their confusion matrix: confusion[i][j] = items rater 1 put in
// category i and rater 2 in category j. Null when chance agreement is 1 (kappa undefined).
export function cohensKappa(confusion: number[][]): number | null {
  const n = sum(confusion.map(sum));
  if (n === 0) return null;
  const k = confusion.length;
  const po = sum(confusion.map((row, i) => row[i]!)) / n;
  const pe = sum(Array.from({ length: k }, (_, c) => (sum(confusion[c]!) / n) * (sum(confusion.map((row) => row[c]!)) / n)));
  return pe === 1 ? null : (po - pe) / (1 - pe);
}

export type AlphaMetric = "nominal" | "ordinal" | "interval";

// Krippendorff's alpha from the coincidence matrix (Krippendorff, "Computing Krippendorff's
// Alpha-Reliability", 2011). units[u] holds the values the coders gave unit u (missing ones left
// out); units with fewer than 2 values are not pairable and are ignored.
export function krippendorffAlpha(units: number[][], metric: AlphaMetric): number | null {
  const pairable = units.filter((u) => u.length >= 2);
  const values = [...new Set(pairable.flat())].sort((a, b) => a - b);
  const index = new Map(values.map((v, i) => [v, i]));
  const V = values.length;
  const o = Array.from({ length: V }, () => new Array<number>(V).fill(0));
  for (const u of pairable) {
    for (let i = 0; i < u.length; i++) for (let j = 0; j < u.length; j++) {
      if (i !== j) o[index.get(u[i]!)!]![index.get(u[j]!)!]! += 1 / (u.length - 1);
    }
  }
  const nc = o.map(sum);
  const n = sum(nc);
  if (n < 2) return null;
  const delta2 = (c: number, k: number): number => {
    if (metric === "nominal") return c === k ? 0 : 1;
    if (metric === "interval") return (values[c]! - values[k]!) ** 2;
    const [lo, hi] = c < k ? [c, k] : [k, c];
    let s = 0;
    for (let g = lo; g <= hi; g++) s += nc[g]!;
    return (s - (nc[c]! + nc[k]!) / 2) ** 2;
  };
  let observed = 0, expected = 0;
  for (let c = 0; c < V; c++) for (let k = 0; k < V; k++) {
    const d = delta2(c, k);
    observed += o[c]![k]! * d;
    expected += nc[c]! * nc[k]! * d;
  }
  if (expected === 0) return null; // all values identical: no variation to agree on
  return 1 - ((n - 1) * observed) / expected;
}

// Two-sided exact binomial test of k successes in n trials against p = 1/2: the probability of
// an outcome no more likely than the one observed.
export function binomialTestHalf(k: number, n: number): number | null {
  if (n === 0) return null;
  const logPmf = new Array<number>(n + 1);
  logPmf[0] = -n * Math.LN2;
  for (let i = 1; i <= n; i++) logPmf[i] = logPmf[i - 1]! + Math.log((n - i + 1) / i);
  const observed = logPmf[k]!;
  let p = 0;
  for (let i = 0; i <= n; i++) if (logPmf[i]! <= observed + 1e-9) p += Math.exp(logPmf[i]!);
  return Math.min(1, p);
}

export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
export const mean = (xs: number[]) => sum(xs) / xs.length;
export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
