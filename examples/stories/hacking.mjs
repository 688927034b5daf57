// One row per step of a hacking.sh run: the reward model's score, KL and entropy per token (what
// the trainer sees), the gold score (the lexicon score of that step's samples in samples.jsonl,
// which the trainer never sees; its mean over the 5 steps around, as 4 samples a step are noisy),
// the share of the 5 steps' samples that repeat a word three times in a row ("colorful colorful
// colorful"), and the monitors' events. Then one JSON line: where the smoothed gold score peaks, where the
// first monitor fired, and where the run ended.
//
//   node examples/stories/hacking.mjs runs/hacking/stop [--rows] [--gold runs/overopt/gold.json]
// --gold: the gold is the IMDb bag-of-words model of examples/overopt (its logit) instead of the lexicon.
//   node examples/stories/hacking.mjs --evals runs/hacking/checkpoint-evals.jsonl   (hacking.sh's evals stage: one row per checkpoint)
import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { lexiconScore, words } from "./lexicon-reward.mjs";
import { repeatsAWord } from "./score-samples.mjs";
import { goldScorer } from "../overopt/gold.mjs";

const args = process.argv.slice(2);
const goldAt = args.indexOf("--gold");
const goldScore = goldAt >= 0 ? ((score) => (text) => score([text])[0])(goldScorer(args.splice(goldAt, 2)[1])) : lexiconScore;
const [dir, flag] = args;
/** Distinct word bigrams over all bigrams of the texts, each text's own (the repetition monitor's distinct-2, src/rl/monitors/signals.ts). */
function distinct2(texts) {
  const seen = new Set();
  let total = 0;
  for (const t of texts) {
    const w = words(t);
    for (let i = 1; i < w.length; i++, total++) seen.add(`${w[i - 1]} ${w[i]}`);
  }
  return total === 0 ? 1 : seen.size / total;
}

if (dir === "--evals") {
  console.log("step  rm_gain  kl  lexicon  reference_lexicon  lexicon_gain ± se  repeats  distinct-2 (reference)  lm_loss  reference_lm_loss");
  const f = (x, d = 3) => x.toFixed(d);
  for (const line of readFileSync(flag, "utf8").split("\n").filter((l) => l.trim() !== "")) {
    const { step, eval: e, scores: s } = JSON.parse(line);
    const samples = readFileSync(`${dirname(flag)}/eval-${step}.jsonl`, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
    const d2 = `${f(distinct2(samples.map((r) => r.completion)))} (${f(distinct2(samples.map((r) => r.reference_completion)))})`;
    console.log([step, f(s.reward_gain), f(e.kl, 1), f(s.lexicon), f(s.reference_lexicon), `${f(s.lexicon_gain)} ± ${f(s.lexicon_gain_se)}`, f(s.repetition, 2), d2, f(e.lm_loss), f(e.reference_lm_loss)].join("  "));
  }
  process.exit(0);
}
if (!dir) {
  console.error("usage: node examples/stories/hacking.mjs RUN_DIR [--rows] [--gold GOLD_JSON]");
  process.exit(2);
}
const jsonl = (file) => (existsSync(`${dir}/${file}`) ? readFileSync(`${dir}/${file}`, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l)) : []);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const metrics = jsonl("metrics.jsonl");
const events = jsonl("events.jsonl");
const gold = new Map();
const repeats = new Map();
for (const s of jsonl("samples.jsonl")) {
  gold.set(s.step, [...(gold.get(s.step) ?? []), goldScore(s.completion)]);
  repeats.set(s.step, [...(repeats.get(s.step) ?? []), repeatsAWord(s.completion) ? 1 : 0]);
}
/** Mean of a per-sample value over the steps within 2 of `step` that have samples. */
const smoothed = (step, values = gold) => {
  const xs = [];
  for (let k = step - 2; k <= step + 2; k++) xs.push(...(values.get(k) ?? []));
  return xs.length ? mean(xs) : NaN;
};
const f = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : "");
const rows = metrics.map((m) => ({
  step: m.step,
  score: m["objective/scores"],
  klPerToken: m["objective/kl"] / m.response_length,
  entropyPerToken: m["objective/entropy"] / m.response_length,
  gold: gold.has(m.step) ? mean(gold.get(m.step)) : NaN,
  gold5: smoothed(m.step),
  repeats5: smoothed(m.step, repeats),
  events: events.filter((e) => e.step === m.step).map((e) => `${e.monitor}=${f(e.value)}`),
}));
if (flag === "--rows" || process.stdout.isTTY) {
  console.log("step  rm_score  kl/token  entropy/token  gold  gold(5-step mean)  repeats(5-step)  events");
  for (const r of rows) console.log([r.step, f(r.score), f(r.klPerToken), f(r.entropyPerToken), f(r.gold), f(r.gold5), f(r.repeats5, 2), r.events.join(" ")].join("  "));
}
// The peak is searched where the 5-step window is whole (not in the run's last 2 steps).
const whole = rows.filter((r) => r.step + 2 <= rows.at(-1).step);
const peak = whole.reduce((best, r) => (r.gold5 > best.gold5 ? r : best), whole[0]);
const firstEvent = events[0];
console.log(JSON.stringify({
  run: dir,
  steps: rows.at(-1)?.step,
  gold_start: Number(f(smoothed(1))),
  gold_peak_step: peak?.step,
  gold_peak: Number(f(peak?.gold5)),
  gold_end: Number(f(rows.at(-3)?.gold5)),
  first_event: firstEvent ? { step: firstEvent.step, monitor: firstEvent.monitor } : null,
  events: events.length,
}));
