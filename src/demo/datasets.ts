// The demo's data, written as JSON-lines files in TRL's formats, so that each stage reads its data
// exactly as `rlhf sft`, `rlhf rm train` and `rlhf dpo` read --data and --eval-data:
//   pretrain.jsonl, pretrain-eval.jsonl        {"text"}: whole stories
//   sft.jsonl, sft-eval.jsonl                  {"prompt", "completion"}: a story's opening, then the rest
//   comparisons.jsonl, comparisons-eval.jsonl  {"prompt", "chosen", "rejected"}: two of K samples of the
//                                              SFT model, ordered by a noisy simulated labeler
//   comparisons-gold.jsonl                     the held-out pairs ordered by the gold reward instead
//   ppo-prompts.txt, eval-prompts.txt          prompts, one a line, for PPO and for the evaluation
// Held-out files hold other stories and other prompts than the training files.
import { writeFileAtomicSync } from "../io/atomic.ts";
import { join } from "node:path";
import type { HostRng } from "../engine/random.ts";
import { Generator } from "../generation/generate.ts";
import type { Architecture } from "../models/architecture.ts";
import type { Params } from "../models/types.ts";
import { EOS, goldRewardOfText, labelPair, letterTokenizer, PROMPT_LEN, RESPONSE_LEN, type SyntheticLanguage } from "./synthetic.ts";

/** A training file and its held-out companion. */
export interface DataFiles {
  train: string;
  eval: string;
}

function writeJsonl(path: string, records: readonly object[]): void {
  writeFileAtomicSync(path, records.map((r) => JSON.stringify(r) + "\n").join(""));
}

/** `count` prompts: PROMPT_LEN letters of the language each, as text. */
export function samplePrompts(lang: SyntheticLanguage, rng: HostRng, count: number): string[] {
  return Array.from({ length: count }, () => letterTokenizer.decode(lang.sample(PROMPT_LEN, rng)));
}

/** `count` prompts in a prompt file (.txt, one a line), as the on-policy commands and `rlhf eval` read them. */
export function writePrompts(dir: string, name: string, lang: SyntheticLanguage, rng: HostRng, count: number): string {
  const path = join(dir, `${name}.txt`);
  writeFileAtomicSync(path, samplePrompts(lang, rng, count).map((p) => p + "\n").join(""));
  return path;
}

/**
 * Stories of the language as pretraining text ({"text"}) or as demonstrations: the first
 * PROMPT_LEN letters the prompt, the rest the completion.
 */
export function writeStories(dir: string, name: string, format: "text" | "prompt-completion", lang: SyntheticLanguage, rng: HostRng, counts: { train: number; eval: number }): DataFiles {
  const record = () => {
    const text = letterTokenizer.decode(lang.sample(PROMPT_LEN + RESPONSE_LEN, rng));
    return format === "text" ? { text } : { prompt: text.slice(0, PROMPT_LEN), completion: text.slice(PROMPT_LEN) };
  };
  const files = { train: join(dir, `${name}.jsonl`), eval: join(dir, `${name}-eval.jsonl`) };
  writeJsonl(files.train, Array.from({ length: counts.train }, record));
  writeJsonl(files.eval, Array.from({ length: counts.eval }, record));
  return files;
}

export interface Comparison {
  prompt: string;
  chosen: string;
  rejected: string;
}

export interface ComparisonFiles extends DataFiles {
  /** The held-out pairs ordered by the gold reward: what the reward model should recover. */
  gold: string;
  pairs: { train: number; eval: number };
}

/**
 * K completions per prompt from `model` (temperature 1, at most `maxNewTokens` tokens); every pair
 * of completions whose gold rewards differ is ordered by a simulated labeler (labelPair: right more
 * often the larger the gold difference). Pairs of the training prompts go to comparisons.jsonl, of
 * the held-out prompts to comparisons-eval.jsonl (and, ordered by gold, comparisons-gold.jsonl).
 */
export async function writeComparisons(
  dir: string,
  model: { arch: Architecture; params: Params },
  prompts: { train: string[]; eval: string[] },
  options: { k: number; maxNewTokens: number; seed: number },
  rng: HostRng,
): Promise<ComparisonFiles> {
  const { k } = options;
  const all = [...prompts.train, ...prompts.eval];
  const ids = all.flatMap((p) => Array.from({ length: k }, () => letterTokenizer.encode(p)));
  const generator = new Generator(model.arch);
  const generations = await generator.generate(model.params, ids, { temperature: 1, maxNewTokens: options.maxNewTokens, seed: options.seed, eosTokenIds: [EOS] }, letterTokenizer);
  generator.dispose();
  const labelled: Comparison[][] = all.map((prompt, i) => {
    const texts = generations.slice(i * k, (i + 1) * k).map((g) => g.text);
    const pairs: Comparison[] = [];
    for (let a = 0; a < k; a++) {
      for (let b = a + 1; b < k; b++) {
        const [ga, gb] = [goldRewardOfText(texts[a]!), goldRewardOfText(texts[b]!)];
        if (ga === gb) continue;
        const aWins = labelPair(ga, gb, rng) === "a";
        pairs.push({ prompt, chosen: aWins ? texts[a]! : texts[b]!, rejected: aWins ? texts[b]! : texts[a]! });
      }
    }
    return pairs;
  });
  const train = labelled.slice(0, prompts.train.length).flat();
  const heldOut = labelled.slice(prompts.train.length).flat();
  const byGold = heldOut.map((c) => (goldRewardOfText(c.chosen) > goldRewardOfText(c.rejected) ? c : { ...c, chosen: c.rejected, rejected: c.chosen }));
  const files = { train: join(dir, "comparisons.jsonl"), eval: join(dir, "comparisons-eval.jsonl"), gold: join(dir, "comparisons-gold.jsonl") };
  writeJsonl(files.train, train);
  writeJsonl(files.eval, heldOut);
  writeJsonl(files.gold, byGold);
  return { ...files, pairs: { train: train.length, eval: heldOut.length } };
}
