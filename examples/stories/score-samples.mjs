// Summarises one `rlhf eval --samples FILE` run for the results table: the RM reward's gain over the
// reference and the KL with standard errors, and the same completions scored by the independent
// lexicon (lexicon-reward.mjs). Each held-out opening has several samples that share it, so the
// standard errors treat openings as the independent units: the spread of the per-opening means of
// (policy − reference), divided by √openings. It also counts degenerate samples (a word three times
// in a row, "colorful colorful colorful"), the plainest sign of a policy exploiting its reward model.
//
//   node examples/stories/score-samples.mjs runs/stories/eval-dpo-beta=0.1.jsonl   → one JSON line
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { lexiconScore, words } from "./lexicon-reward.mjs";

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Mean of per-opening means, and its standard error over openings. */
function clustered(rows, value) {
  const byPrompt = new Map();
  for (const r of rows) byPrompt.set(r.prompt, [...(byPrompt.get(r.prompt) ?? []), value(r)]);
  const means = [...byPrompt.values()].map(mean);
  const m = mean(means);
  const variance = means.reduce((a, x) => a + (x - m) ** 2, 0) / (means.length - 1);
  return { mean: m, se: Math.sqrt(variance / means.length) };
}

const round = (x) => Number(x.toFixed(4));

/** Whether some word of `text` comes three times in a row. */
export function repeatsAWord(text) {
  const w = words(text);
  return w.some((word, i) => i >= 2 && word === w[i - 1] && word === w[i - 2]);
}

/** The summary of one `rlhf eval --samples` file (see the header). */
export function scoreSamples(file) {
  const rows = readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
  const lexicon = rows.map((r) => ({ ...r, ours: lexiconScore(r.completion), theirs: lexiconScore(r.reference_completion) }));
  const gain = clustered(rows, (r) => r.reward - r.reference_reward);
  const kl = clustered(rows, (r) => r.kl);
  const lexiconGain = clustered(lexicon, (r) => r.ours - r.theirs);
  const wins = mean(lexicon.map((r) => (r.ours > r.theirs ? 1 : r.ours === r.theirs ? 0.5 : 0)));
  return {
    reward_gain: round(gain.mean),
    reward_gain_se: round(gain.se),
    kl_se: round(kl.se),
    lexicon: round(mean(lexicon.map((r) => r.ours))),
    reference_lexicon: round(mean(lexicon.map((r) => r.theirs))),
    lexicon_gain: round(lexiconGain.mean),
    lexicon_gain_se: round(lexiconGain.se),
    lexicon_win_rate: round(wins),
    repetition: round(mean(rows.map((r) => (repeatsAWord(r.completion) ? 1 : 0)))),
    reference_repetition: round(mean(rows.map((r) => (repeatsAWord(r.reference_completion) ? 1 : 0)))),
    samples: rows.length,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file] = process.argv.slice(2);
  if (!file) throw new Error("usage: node examples/stories/score-samples.mjs SAMPLES.jsonl");
  console.log(JSON.stringify(scoreSamples(file)));
}
