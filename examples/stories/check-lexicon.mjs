// Does the lexicon score measure sentiment? Its sign on rt-polarity's sentences (positive > 0,
// negative ≤ 0): prints the accuracy on each file and their mean, as JSON.
//
//   node examples/stories/check-lexicon.mjs
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { lexiconScore } from "./lexicon-reward.mjs";

const RT = fileURLToPath(new URL("../../../shared/data/rt-polarity/", import.meta.url));
const sentences = (file) => readFileSync(RT + file, "utf8").split("\n").filter((l) => l.trim() !== "");
const share = (xs, keep) => xs.filter(keep).length / xs.length;

const pos = sentences("rt-polarity.pos").map(lexiconScore);
const neg = sentences("rt-polarity.neg").map(lexiconScore);
const positive = share(pos, (s) => s > 0);
const negative = share(neg, (s) => s <= 0);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(JSON.stringify({ sentences: pos.length + neg.length, accuracy: (positive + negative) / 2, positive_accuracy: positive, negative_accuracy: negative, mean_positive: mean(pos), mean_negative: mean(neg) }));
