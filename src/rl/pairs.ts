// Preference data from a policy and a reward (best-of-K / rejection-sampling style, as in Llama 2's
// and Zephyr's pipelines): sample K completions per prompt, score them, and keep the best as
// `chosen` and the worst as `rejected`, or all K ranked. The records are TRL's preference format
// with an explicit prompt, which `rlhf dpo` and `rlhf rm train` read (src/data/datasets.ts):
//   {"prompt", "chosen", "rejected", "score_chosen", "score_rejected"}
//   {"prompt", "responses", "ranking": [best first], "ties"?: [[i, j], ...], "scores"}
// Text prompts give text completions; chat prompts keep their message list and give completions as
// [{"role": "assistant", "content": text}], TRL's conversational form. A prompt whose K completions
// all score the same says nothing about preference and is skipped (and counted).
// A completion cut off at max_new_tokens has not ended: the record says so (`chosen_truncated`,
// `rejected_truncated`, or `truncated` per response, present only when true somewhere), and
// `rlhf dpo` / `rlhf kto` then give it no EOS. Appending EOS to an unfinished text (TRL's readers do
// it to every completion) lets DPO learn the preference from that one improbable token, which is
// never sampled mid-sentence and costs KL without changing what is generated (docs/stories-experiments.md).
import { HostRng } from "../engine/random.ts";
import { createRolloutEngine } from "../generation/rollout-engine.ts";
import type { Architecture } from "../models/architecture.ts";
import type { Params } from "../models/types.ts";
import type { ChatMessage } from "../tokenizers/chat.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { PromptValue } from "./prompts.ts";
import { promptText } from "../tokenizers/chat.ts";
import type { RewardSource } from "./reward-source.ts";
import { encodePrompts, type SamplingSettings } from "./rollout.ts";

/** batch_size counts prompts; each contributes k rows. */
export interface PairsSettings extends SamplingSettings {
  /** Completions per prompt. */
  k: number;
}

export type Completion = string | ChatMessage[];

export interface PreferenceRecord {
  prompt: PromptValue;
  chosen: Completion;
  rejected: Completion;
  score_chosen: number;
  score_rejected: number;
  /** Present (true) when the completion was cut off at max_new_tokens. */
  chosen_truncated?: true;
  rejected_truncated?: true;
}

export interface RankingRecord {
  prompt: PromptValue;
  responses: Completion[];
  /** Indices into responses, best first. */
  ranking: number[];
  /** Neighbours in the ranking that scored the same (present only when some did). */
  ties?: [number, number][];
  scores: number[];
  /** Per response, whether it was cut off at max_new_tokens (present only when one was). */
  truncated?: boolean[];
}

export interface ScoredPrompt {
  prompt: PromptValue;
  completions: string[];
  scores: number[];
  /** Per completion: cut off at max_new_tokens (it did not end with EOS or a stop string). */
  truncated: boolean[];
}

const asCompletion = (prompt: PromptValue, text: string): Completion => (typeof prompt === "string" ? text : [{ role: "assistant", content: text }]);

/** Best against worst (the first of equals); null when every score is the same. */
export function preferencePair({ prompt, completions, scores, truncated }: ScoredPrompt): PreferenceRecord | null {
  let best = 0;
  let worst = 0;
  scores.forEach((s, i) => {
    if (s > scores[best]!) best = i;
    if (s < scores[worst]!) worst = i;
  });
  if (scores[best] === scores[worst]) return null;
  return {
    prompt,
    chosen: asCompletion(prompt, completions[best]!),
    rejected: asCompletion(prompt, completions[worst]!),
    score_chosen: scores[best]!,
    score_rejected: scores[worst]!,
    ...(truncated[best] ? { chosen_truncated: true as const } : {}),
    ...(truncated[worst] ? { rejected_truncated: true as const } : {}),
  };
}

/** All completions ranked by score, equal scores as ties; null when every score is the same. */
export function rankingRecord({ prompt, completions, scores, truncated }: ScoredPrompt): RankingRecord | null {
  const ranking = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  if (scores[ranking[0]!] === scores[ranking.at(-1)!]) return null;
  const ties: [number, number][] = [];
  for (let r = 1; r < ranking.length; r++) if (scores[ranking[r]!] === scores[ranking[r - 1]!]) ties.push([ranking[r - 1]!, ranking[r]!]);
  return { prompt, responses: completions.map((c) => asCompletion(prompt, c)), ranking, ...(ties.length > 0 ? { ties } : {}), scores, ...(truncated.some(Boolean) ? { truncated } : {}) };
}

/** K sampled completions per prompt with their scores, in prompt order; deterministic in settings.seed. */
export async function sampleScored(args: {
  arch: Architecture;
  params: Params;
  tokenizer: Tokenizer;
  prompts: PromptValue[];
  reward: RewardSource;
  eosIds: number[];
  settings: PairsSettings;
  onBatch?: (promptsDone: number) => void;
}): Promise<ScoredPrompt[]> {
  const { arch, params, tokenizer, prompts, reward, settings: s } = args;
  if (prompts.length === 0) throw new Error("pairs: no prompts");
  if (!Number.isInteger(s.k) || s.k < 2) throw new Error(`pairs: k must be an integer of at least 2 (got ${s.k}); a preference needs two completions`);
  const texts = prompts.map((p) => promptText(tokenizer, p));
  const { ids } = encodePrompts(tokenizer, texts, arch.maxPositions, s.max_new_tokens);
  const generator = createRolloutEngine(s.rollout_engine ?? "jax-js", arch);
  const rng = new HostRng(s.seed);
  const out: ScoredPrompt[] = [];
  try {
    for (let start = 0; start < prompts.length; start += s.batch_size) {
      const real = Math.min(s.batch_size, prompts.length - start);
      // Rows g·k … g·k + k − 1 continue prompt start + g; padding rows repeat the last real prompt.
      const rows = Array.from({ length: s.batch_size * s.k }, (_, r) => start + Math.min(Math.floor(r / s.k), real - 1));
      const generations = await generator.generate(
        params,
        rows.map((i) => ids[i]!),
        { temperature: s.temperature, topK: s.top_k, topP: s.top_p, maxNewTokens: s.max_new_tokens, seed: rng.nextUint32(), eosTokenIds: args.eosIds },
        tokenizer,
      );
      const n = real * s.k;
      const completions = generations.slice(0, n).map((g) => g.text);
      const truncated = generations.slice(0, n).map((g) => g.finishReason === "length");
      const scores = await reward.score(rows.slice(0, n).map((i) => texts[i]!), completions);
      for (let g = 0; g < real; g++) {
        const group = (xs: readonly unknown[]) => xs.slice(g * s.k, (g + 1) * s.k);
        out.push({ prompt: prompts[start + g]!, completions: group(completions) as string[], scores: group(scores) as number[], truncated: group(truncated) as boolean[] });
      }
      args.onBatch?.(start + real);
    }
  } finally {
    await generator.dispose();
  }
  return out;
}

/** Preference (or ranking) records from scored prompts, and how many prompts were skipped as all-tied. */
export function preferenceRecords(scored: ScoredPrompt[], format: "preference" | "ranking"): { records: (PreferenceRecord | RankingRecord)[]; tied: number } {
  const records: (PreferenceRecord | RankingRecord)[] = [];
  for (const s of scored) {
    const record = format === "preference" ? preferencePair(s) : rankingRecord(s);
    if (record) records.push(record);
  }
  return { records, tied: scored.length - records.length };
}
