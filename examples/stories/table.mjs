// Prints run.sh's results (OUT/results.jsonl) as the Markdown table of the README and
// docs/stories-experiments.md, so the published numbers are read from the runs, never copied by hand.
// The reference row first, then the rows grouped by method (PPO, DPO, KTO, online DPO, GRPO, others),
// each group by KL, so each method's reward-against-KL frontier reads down the table.
// The scores are recomputed from each row's samples file beside results.jsonl (score-samples.mjs),
// so a column added there reaches rows evaluated before it existed.
//
//   node examples/stories/table.mjs runs/stories/results.jsonl [--methods ppo,dpo,...] [--only REGEX]
//
// --only keeps the rows whose "METHOD KNOB" (e.g. "dpo beta=0.3,pairs=1720,ep=3") the regex matches.
// When run.sh's tax.jsonl lies beside the results, a last column has each policy's alignment tax:
// its LM loss on held-out TinyStories text minus the reference's, in nats per token.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { scoreSamples } from "./score-samples.mjs";

const args = process.argv.slice(2);
const file = args.find((a, i) => !a.startsWith("--") && (i === 0 || !args[i - 1].startsWith("--")));
const methodsFlag = args.indexOf("--methods");
const methods = methodsFlag >= 0 ? args[methodsFlag + 1].split(",") : null;
const onlyFlag = args.indexOf("--only");
const only = onlyFlag >= 0 ? new RegExp(args[onlyFlag + 1]) : null;
if (!file) throw new Error("usage: node examples/stories/table.mjs RESULTS.jsonl [--methods ppo,dpo,...] [--only REGEX]");

const jsonLines = (path) => readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
const results = jsonLines(file);
const taxFile = join(dirname(file), "tax.jsonl");
const taxes = new Map(existsSync(taxFile) ? jsonLines(taxFile).map((t) => [`${t.method} ${t.knob}`, t.lm]) : []);
const ORDER = ["ppo", "dpo", "kto", "online-dpo", "grpo"];
const rank = (method) => (ORDER.includes(method) ? ORDER.indexOf(method) : ORDER.length);
const shown = results
  .filter((r) => (!methods || methods.includes(r.method)) && (!only || only.test(`${r.method} ${r.knob}`)))
  .map((r) => ({ ...r, scores: scoreSamples(join(dirname(file), `eval-${r.method}-${r.knob}.jsonl`)) }))
  .sort((a, b) => rank(a.method) - rank(b.method) || a.eval.kl - b.eval.kl);

const signed = (x, digits) => `${x < 0 ? "−" : "+"}${Math.abs(x).toFixed(digits)}`;
const plain = (x, digits) => (x < 0 ? `−${Math.abs(x).toFixed(digits)}` : x.toFixed(digits));
// "kl_coef=0.05,lr=1e-4" → "kl_coef 0.05, lr 1e-4"
const setting = (knob) => knob.split(",").map((part) => part.replace("=", " ")).join(", ");

const first = shown[0];
const percent = (x) => `${Math.round(100 * x)}%`;
const withTax = taxes.size > 0;
const referenceLm = [...taxes.values()][0]?.reference_lm_loss;
const taxCell = (method, knob) => {
  if (!withTax) return "";
  const lm = taxes.get(`${method} ${knob}`);
  return lm ? ` ${signed(lm.lm_loss - lm.reference_lm_loss, 3)} |` : " |";
};
console.log("| method | setting | RM reward (gain ± s.e.) | KL | lexicon gain ± s.e. | win rate (RM) | win rate (lexicon) | repeats |" + (withTax ? " alignment tax (LM loss) |" : ""));
console.log("|---|---|---|---|---|---|---|---|" + (withTax ? "---|" : ""));
console.log(`| reference (stories260K) | | ${plain(first.eval.reference_reward, 2)} | 0 | (lexicon ${plain(first.scores.reference_lexicon, 3)}) | | | ${percent(first.scores.reference_repetition)} |` +
  (withTax ? ` (LM loss ${referenceLm.toFixed(3)}) |` : ""));
for (const { method, knob, eval: e, scores: s } of shown) {
  console.log(
    `| ${method} | ${setting(knob)} | ${plain(e.reward, 2)} (${signed(s.reward_gain, 2)} ± ${s.reward_gain_se.toFixed(2)}) ` +
      `| ${e.kl.toFixed(1)} | ${signed(s.lexicon_gain, 3)} ± ${s.lexicon_gain_se.toFixed(3)} | ${e.win_rate.toFixed(2)} | ${s.lexicon_win_rate.toFixed(2)} | ${percent(s.repetition)} |` +
      taxCell(method, knob),
  );
}
