// The demo's built-in task, needing no download: a small synthetic language of letters generated
// by a fixed random bigram chain, and a hidden "gold" preference that the simulated labelers follow
// (noisily) and that the reward model must discover: responses rich in the letters a, e, o are
// better, responses using x, z are worse. Short texts, so everything trains in seconds.
import { HostRng } from "../engine/random.ts";
import { ModuleRewardSource, type RewardSource } from "../rl/reward-source.ts";
import { HfTokenizer, type HfTokenizerJson } from "../tokenizers/hf.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

export const PAD = 0;
export const BOS = 1;
export const EOS = 2;
const LETTERS = "abcdefghijklmnopqrstuvwxyz";
export const VOCAB = 3 + LETTERS.length;
/** A story is a prompt of PROMPT_LEN letters and a response of RESPONSE_LEN. */
export const PROMPT_LEN = 4;
export const RESPONSE_LEN = 8;

/**
 * One token per letter (ids 3.. are a.. z), as a Hugging Face tokenizer.json: a BPE model with no
 * merges, BOS added by the post-processor, and a Fuse decoder, so that the demo's models save with
 * a tokenizer the other commands (rlhf generate, eval, ppo) load back. Other characters are dropped
 * (there is no unknown token).
 */
function letterTokenizerJson(): HfTokenizerJson {
  const specials = ["<pad>", "<s>", "</s>"];
  const special = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const bos = { SpecialToken: { id: "<s>", type_id: 0 } };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map(special),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [bos, { Sequence: { id: "A", type_id: 0 } }],
      pair: [bos, { Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [BOS], tokens: ["<s>"] } },
    },
    decoder: { type: "Fuse" },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries([...specials, ...LETTERS].map((token, id) => [token, id])),
      merges: [],
    },
  };
}

export const letterTokenizer: Tokenizer = new HfTokenizer(letterTokenizerJson(), { bos_token: "<s>", eos_token: "</s>", pad_token: "<pad>" });

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

/** The gold reward of a response's text. */
export function goldRewardOfText(text: string): number {
  return goldReward(letterTokenizer.encode(text, { addSpecialTokens: false }));
}

/** The gold reward as a reward source (what the evaluation scores with, as `rlhf eval --reward` takes one). */
export const goldRewardSource: RewardSource = new ModuleRewardSource("gold reward", (_prompts, completions) => completions.map(goldRewardOfText));
