// The gold reward of the overoptimization example: a bag-of-words logistic regression trained on all
// 25,000 labelled IMDb train reviews (../shared/data/imdb), score = its logit of "positive".
// Features: each vocabulary word present in the text (once, however often it repeats), divided by
// √(distinct known words), so a text cannot raise its score by repeating a word or by growing longer.
// Why not a reward model through `rlhf rm train`: see the README section "The overoptimization curve".
//
//   node examples/overopt/gold.mjs train OUT/gold.json     fit on train.jsonl, report test accuracy
//   OVEROPT_GOLD=OUT/gold.json rlhf eval ... --reward examples/overopt/gold.mjs   (a reward module)
import { readFileSync, existsSync, writeFileSync, renameSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { words } from "../stories/lexicon-reward.mjs";

const IMDB = fileURLToPath(new URL("../../../shared/data/imdb/", import.meta.url));
const MIN_DOCS = 5; // a word in fewer train reviews is left out: its weight would fit noise
const EPOCHS = 150;
const LEARNING_RATE = 0.05; // Adam, full batch
const L2 = 1e-5; // per-example mean loss + L2/2·|w|²

const readReviews = (file) =>
  readFileSync(IMDB + file, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));

/** Distinct words of a review or completion (IMDb's <br /> tags removed). */
const distinctWords = (text) => [...new Set(words(text.replace(/<br \/>/g, " ")))];

/** Indices of the vocabulary words in `text`, and the feature value each gets (1/√count). */
function features(vocab, text) {
  const ids = distinctWords(text).map((w) => vocab.get(w)).filter((i) => i !== undefined);
  return { ids, value: ids.length === 0 ? 0 : 1 / Math.sqrt(ids.length) };
}

function logit(model, text) {
  const { ids, value } = features(model.vocab, text);
  let z = model.bias;
  for (const i of ids) z += model.weights[i] * value;
  return z;
}

function train(out) {
  const t0 = Date.now();
  const reviews = readReviews("train.jsonl");
  const docCount = new Map();
  for (const r of reviews) for (const w of distinctWords(r.text)) docCount.set(w, (docCount.get(w) ?? 0) + 1);
  const vocabWords = [...docCount].filter(([, c]) => c >= MIN_DOCS).map(([w]) => w).sort();
  const vocab = new Map(vocabWords.map((w, i) => [w, i]));
  const examples = reviews.map((r) => ({ ...features(vocab, r.text), y: r.label }));
  const n = vocabWords.length + 1; // the last parameter is the bias
  const theta = new Float64Array(n), m = new Float64Array(n), v = new Float64Array(n), grad = new Float64Array(n);
  for (let epoch = 1; epoch <= EPOCHS; epoch++) {
    grad.fill(0);
    let loss = 0;
    for (const { ids, value, y } of examples) {
      let z = theta[n - 1];
      for (const i of ids) z += theta[i] * value;
      const p = 1 / (1 + Math.exp(-z));
      loss += y === 1 ? -Math.log(p + 1e-12) : -Math.log(1 - p + 1e-12);
      const g = (p - y) / examples.length;
      for (const i of ids) grad[i] += g * value;
      grad[n - 1] += g;
    }
    for (let i = 0; i < n - 1; i++) grad[i] += L2 * theta[i];
    for (let i = 0; i < n; i++) {
      m[i] = 0.9 * m[i] + 0.1 * grad[i];
      v[i] = 0.999 * v[i] + 0.001 * grad[i] * grad[i];
      theta[i] -= (LEARNING_RATE * (m[i] / (1 - 0.9 ** epoch))) / (Math.sqrt(v[i] / (1 - 0.999 ** epoch)) + 1e-8);
    }
    if (epoch % 25 === 0) console.error(`gold: epoch ${epoch}/${EPOCHS}, train loss ${(loss / examples.length).toFixed(4)}`);
  }
  const model = { vocab, weights: theta.subarray(0, n - 1), bias: theta[n - 1] };
  const accuracy = (rows) => rows.filter((r) => (logit(model, r.text) > 0 ? 1 : 0) === r.label).length / rows.length;
  const report = {
    vocabulary: vocabWords.length,
    train_accuracy: Number(accuracy(reviews).toFixed(4)),
    test_accuracy: Number(accuracy(readReviews("test.jsonl")).toFixed(4)),
    seconds: Math.round((Date.now() - t0) / 1000),
  };
  const weights = Object.fromEntries(vocabWords.map((w, i) => [w, Number(theta[i].toFixed(5))]));
  // Written whole or not at all: the temp file is renamed over the target.
  writeFileSync(`${out}.tmp`, JSON.stringify({ ...report, bias: theta[n - 1], weights }));
  renameSync(`${out}.tmp`, out);
  console.log(JSON.stringify(report));
}

/** The gold of texts, from a model file that `gold.mjs train` wrote. */
export function goldScorer(file) {
  if (!file || !existsSync(file)) throw new Error(`gold model: expected the file written by \`node examples/overopt/gold.mjs train FILE\`, got ${file ?? "nothing"}`);
  const json = JSON.parse(readFileSync(file, "utf8"));
  const vocabWords = Object.keys(json.weights);
  const model = { vocab: new Map(vocabWords.map((w, i) => [w, i])), weights: vocabWords.map((w) => json.weights[w]), bias: json.bias };
  return (texts) => texts.map((t) => logit(model, t));
}

let scorer;
/** The reward-module interface: the gold logit of each completion (the prompt is not scored); the model file is $OVEROPT_GOLD. */
export function reward(_prompts, completions) {
  scorer ??= goldScorer(process.env.OVEROPT_GOLD);
  return scorer(completions);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, out] = process.argv.slice(2);
  if (command !== "train" || !out) {
    console.error("usage: node examples/overopt/gold.mjs train OUT_FILE");
    process.exit(2);
  }
  train(out);
}
