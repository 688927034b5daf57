// The demo's built-in task, needing no download: a small synthetic language of letters generated
// by a fixed random bigram chain, and a hidden "gold" preference that the simulated labelers follow
// (noisily) and that the reward model must discover: responses rich in the letters a, e, o are
// better, responses using x, z are worse. Short texts, so everything trains in seconds.
import { HostRng } from "../engine/random.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

export const PAD = 0;
export const BOS = 1;
export const EOS = 2;
const LETTERS = "abcdefghijklmnopqrstuvwxyz";
export const VOCAB = 3 + LETTERS.length;

/** One token per letter; ids 3.. are a.. z. */
export const letterTokenizer: Tokenizer = {
  vocabSize: VOCAB,
  bosTokenId: BOS,
  eosTokenId: EOS,
  padTokenId: PAD,
  chatTemplate: null,
  modelMaxLength: null,
  encode(text, options) {
    const ids = [...text].filter((ch) => LETTERS.includes(ch)).map((ch) => LETTERS.indexOf(ch) + 3);
    return options?.addSpecialTokens === false ? ids : [BOS, ...ids];
  },
  decode(ids) {
    return ids.filter((i) => i >= 3 && i < VOCAB).map((i) => LETTERS[i - 3]).join("");
  },
  async save() {
    throw new Error("the demo's letter tokenizer is not saved");
  },
};

const GOOD = new Set([..."aeo"].map((ch) => LETTERS.indexOf(ch) + 3));
const BAD = new Set([..."xz"].map((ch) => LETTERS.indexOf(ch) + 3));

/** The hidden gold reward of a response (token ids): share of good letters minus share of bad ones. */
export function goldReward(response: number[]): number {
  const letters = response.filter((t) => t >= 3);
  if (letters.length === 0) return -1;
  let score = 0;
  for (const t of letters) score += GOOD.has(t) ? 1 : BAD.has(t) ? -1 : 0;
  return score / letters.length;
}

/** A bigram language: each letter has a few likely successors, fixed by the seed. */
export class SyntheticLanguage {
  readonly #next: number[][];
  readonly #rng: HostRng;

  constructor(seed: number) {
    const rng = new HostRng(seed);
    // Each letter has 4 successors; weights sum to 1. Good and bad letters are reachable but not dominant.
    this.#next = Array.from({ length: LETTERS.length }, () => {
      const w = new Array<number>(LETTERS.length).fill(0.02 / LETTERS.length);
      for (let k = 0; k < 4; k++) w[rng.int(LETTERS.length)]! += 0.245;
      const total = w.reduce((a, b) => a + b, 0);
      return w.map((x) => x / total);
    });
    this.#rng = rng.fork();
  }

  /** A random sequence of `n` letter token ids, starting from a random letter. */
  sample(n: number, rng: HostRng = this.#rng): number[] {
    const out = [rng.int(LETTERS.length)];
    while (out.length < n) {
      const row = this.#next[out[out.length - 1]!]!;
      let u = rng.next();
      let j = 0;
      while (j < row.length - 1 && (u -= row[j]!) > 0) j++;
      out.push(j);
    }
    return out.map((i) => i + 3);
  }
}

/** Simulated labeler: prefers the higher gold reward with Bradley-Terry noise of inverse temperature `beta`. */
export function labelPair(goldA: number, goldB: number, rng: HostRng, beta = 8): "a" | "b" {
  const pA = 1 / (1 + Math.exp(-beta * (goldA - goldB)));
  return rng.next() < pA ? "a" : "b";
}
