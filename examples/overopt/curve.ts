// The overoptimization curve of a run.sh output directory: gold and proxy reward gains over the
// reference against d = √KL, for best-of-n (n = 1…64 from bon.jsonl) and for PPO's checkpoints
// (ppo-evals.jsonl and their eval-STEP.jsonl samples), Gao et al.'s forms fitted to the gold, and
// where the monitors fired (ppo/events.jsonl). Writes OUT/curve.json and OUT/overopt.svg, prints
// a summary.
//
//   node --import tsx examples/overopt/curve.ts runs/overopt
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomicSync } from "../../src/io/atomic.ts";
import { bestOfNExpectation, bestOfNKl, fitBestOfN, fitRl } from "../../src/rl/overoptimization.ts";
// @ts-expect-error: a plain .mjs reward module without types
import { reward as goldScores } from "./gold.mjs";
import { drawFigure, type CurvePoint, type MonitorMark } from "./figure.ts";

const out = process.argv[2];
if (!out || !existsSync(`${out}/bon.jsonl`)) {
  console.error("usage: node --import tsx examples/overopt/curve.ts OUT   (OUT: a run.sh directory with bon.jsonl)");
  process.exit(2);
}
process.env.OVEROPT_GOLD ??= `${out}/gold.json`;
const gold = (texts: string[]): number[] => goldScores([], texts);
const jsonl = (file: string): any[] =>
  existsSync(file) ? readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l)) : [];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const round = (x: number, digits = 4) => Number(x.toFixed(digits));

// Best-of-n: each opening's 64 reference samples give the expected proxy and gold of the proxy's
// best of n; the gains are over n = 1 (the reference's plain mean).
const bon = jsonl(`${out}/bon.jsonl`).map((r) => ({ proxy: r.scores as number[], gold: gold(r.responses) }));
const bonAt = (n: number) => ({
  proxy: mean(bon.map((p) => bestOfNExpectation(p.proxy, p.proxy, n))),
  gold: mean(bon.map((p) => bestOfNExpectation(p.proxy, p.gold, n))),
});
const bonBase = bonAt(1);
const bonPoints: CurvePoint[] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64].map((n) => {
  const at = bonAt(n);
  return { label: `n=${n}`, d: Math.sqrt(bestOfNKl(n)), kl: bestOfNKl(n), proxy: at.proxy - bonBase.proxy, gold: at.gold - bonBase.gold };
});

// PPO: each checkpoint's held-out samples against the reference's, drawn with the same seeds.
const evals = jsonl(`${out}/ppo-evals.jsonl`).sort((a, b) => a.step - b.step);
const rlPoints: CurvePoint[] = [
  { label: "step 0", step: 0, d: 0, kl: 0, proxy: 0, gold: 0 },
  ...evals.map(({ step, eval: e }) => {
    const samples = jsonl(`${out}/eval-${step}.jsonl`);
    const goldGain = mean(gold(samples.map((s) => s.completion))) - mean(gold(samples.map((s) => s.reference_completion)));
    // A k1 estimate can dip below 0 near the start; √ of it is taken at 0.
    return { label: `step ${step}`, step, d: Math.sqrt(Math.max(e.kl, 0)), kl: e.kl, proxy: e.reward - e.reference_reward, gold: goldGain };
  }),
];

// The monitors' events, placed at the √KL of their step interpolated between checkpoints.
const dAtStep = (step: number): number => {
  const after = rlPoints.findIndex((p) => p.step! >= step);
  if (after <= 0) return after === 0 ? rlPoints[0]!.d : rlPoints.at(-1)!.d;
  const [a, b] = [rlPoints[after - 1]!, rlPoints[after]!];
  return a.d + ((b.d - a.d) * (step - a.step!)) / (b.step! - a.step!);
};
const events = jsonl(`${out}/ppo/events.jsonl`);
const marks: MonitorMark[] = events.map((e) => ({ step: e.step, monitor: e.monitor, d: dAtStep(e.step) }));

const fits = {
  best_of_n: fitBestOfN(bonPoints.map((p) => p.d), bonPoints.map((p) => p.gold)),
  rl: fitRl(rlPoints.map((p) => p.d), rlPoints.map((p) => p.gold)),
};
const goldPeak = rlPoints.reduce((best, p) => (p.gold > best.gold ? p : best));
// A finer look than every 6th step: the gold of each training step's kept samples (ppo/samples.jsonl,
// 4 a step), averaged over the 5 steps around it as hacking.mjs does; the peak is searched where
// the window is whole.
const goldByStep = new Map<number, number[]>();
for (const s of jsonl(`${out}/ppo/samples.jsonl`)) goldByStep.set(s.step, [...(goldByStep.get(s.step) ?? []), gold([s.completion])[0]!]);
const trainSteps = [...goldByStep.keys()].sort((a, b) => a - b);
const trainGold = trainSteps
  .filter((step) => step - 2 >= trainSteps[0]! && step + 2 <= trainSteps.at(-1)!)
  .map((step) => ({ step, gold5: mean([-2, -1, 0, 1, 2].flatMap((k) => goldByStep.get(step + k) ?? [])) }));
const trainPeak = trainGold.reduce((best, r) => (r.gold5 > best.gold5 ? r : best), trainGold[0] ?? { step: NaN, gold5: NaN });
const first = events[0];
const summary = {
  best_of_n: Object.fromEntries(Object.entries(fits.best_of_n).map(([k, v]) => [k, round(v)])),
  rl: Object.fromEntries(Object.entries(fits.rl).map(([k, v]) => [k, round(v)])),
  rl_gold_peak: { step: goldPeak.step, d: round(goldPeak.d), kl: round(goldPeak.kl, 2), gold: round(goldPeak.gold) },
  train_gold_peak: { step: trainPeak.step, gold5: round(trainPeak.gold5), start: round(trainGold[0]?.gold5 ?? NaN), end: round(trainGold.at(-1)?.gold5 ?? NaN) },
  first_event: first ? { step: first.step, monitor: first.monitor, d: round(dAtStep(first.step)) } : null,
  monitors_before_gold_peak: first ? first.step <= goldPeak.step! : false,
};
const points = { best_of_n: bonPoints, rl: rlPoints };
writeFileAtomicSync(`${out}/curve.json`, JSON.stringify({ ...summary, points, train_gold: trainGold, events }, null, 1) + "\n");
writeFileAtomicSync(`${out}/overopt.svg`, drawFigure({ points, fits, marks }));

const f = (x: number, d = 3) => x.toFixed(d);
console.log("method       point      KL      √KL    proxy gain  gold gain");
for (const [method, ps] of Object.entries(points))
  for (const p of ps) console.log([method.padEnd(11), p.label.padEnd(9), f(p.kl, 2).padStart(6), f(p.d).padStart(6), f(p.proxy).padStart(10), f(p.gold).padStart(10)].join("  "));
for (const e of events) console.log(`event: step ${e.step} ${e.monitor} (value ${f(e.value)}, threshold ${e.threshold})`);
console.log(JSON.stringify(summary));
