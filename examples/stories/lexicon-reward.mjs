// An independent sentiment score for the stories task: the mean IMDb expected rating (Potts 2011;
// ../shared/data/imdb/imdbEr.txt, one value per word of imdb.vocab: below 0 for words of low-rated
// reviews, above 0 for words of high-rated ones) over the completion's words that the vocabulary
// knows. The policy never optimises it (it trains on the rt-polarity reward model), so a gain here
// is not just the reward model's taste. Transparent and length-neutral (a mean, not a sum); a
// completion with no known word scores 0. Its sign agrees with rt-polarity's labels on 74.6% of
// the sentences (check-lexicon.mjs).
//
//   rlhf eval ... --reward examples/stories/lexicon-reward.mjs       (a reward module, see src/rl/reward-source.ts)
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const IMDB = fileURLToPath(new URL("../../../shared/data/imdb/", import.meta.url));

/** word → expected rating, from the two files' matching lines. */
function loadLexicon() {
  const words = readFileSync(IMDB + "imdb.vocab", "utf8").split("\n");
  const ratings = readFileSync(IMDB + "imdbEr.txt", "utf8").split("\n");
  const lexicon = new Map();
  words.forEach((w, i) => {
    if (w !== "" && ratings[i] !== undefined && ratings[i] !== "") lexicon.set(w, Number(ratings[i]));
  });
  return lexicon;
}

const lexicon = loadLexicon();

/** Lower-cased words as imdb.vocab spells them (letters, digits, apostrophes: "don't", "lily's"). */
export function words(text) {
  return text.toLowerCase().match(/[a-z0-9']+/g) ?? [];
}

/** Mean expected rating of the known words of `text`; 0 when it has none. */
export function lexiconScore(text) {
  const known = words(text).filter((w) => lexicon.has(w));
  return known.length === 0 ? 0 : known.reduce((a, w) => a + lexicon.get(w), 0) / known.length;
}

/** The reward-module interface: one score per completion (the prompt is not scored). */
export function reward(_prompts, completions) {
  return completions.map(lexiconScore);
}
