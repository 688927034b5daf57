// A round's comparisons: the K completions of each prompt paired off (1 with 2, 3 with 4, …), so
// each completion is judged once and a labeler sees K/2 pairs per prompt. A labeled comparison
// is a preference record the trainers read ({"prompt", "chosen", "rejected"}); an equal verdict is
// written as "tie": true, which the trainers skip.
import type { ScoredPrompt } from "../rl/pairs.ts";
import type { PromptValue } from "../rl/prompts.ts";
import type { RewardSource } from "../rl/reward-source.ts";
import { promptText } from "../tokenizers/chat.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

export interface Comparison {
  /** `r<round>-p<prompt>-c<first completion>`: unique in a run, the feedback app's item id. */
  id: string;
  prompt: PromptValue;
  /** The prompt as the models read it (chat prompts through the template). */
  prompt_text: string;
  responses: [string, string];
  truncated: [boolean, boolean];
  /** The policy that wrote both completions. */
  policy: string;
}

export interface LabeledComparison {
  id: string;
  prompt: string;
  chosen: string;
  rejected: string;
  chosen_truncated?: true;
  rejected_truncated?: true;
  tie?: true;
  /** Who labeled it: the labeler's name (a reward module, or people). */
  labeler: string;
  round: number;
}

export function pairOff(sampled: ScoredPrompt[], tokenizer: Tokenizer, round: number, policy: string): Comparison[] {
  const out: Comparison[] = [];
  sampled.forEach((s, p) => {
    for (let c = 0; c + 1 < s.completions.length; c += 2) {
      out.push({
        id: `r${round}-p${p}-c${c}`,
        prompt: s.prompt,
        prompt_text: promptText(tokenizer, s.prompt),
        responses: [s.completions[c]!, s.completions[c + 1]!],
        truncated: [s.truncated[c]!, s.truncated[c + 1]!],
        policy,
      });
    }
  });
  return out;
}

/** The record for a verdict: 0 or 1 preferred, or null for a tie. */
export function labeled(c: Comparison, preferred: 0 | 1 | null, labeler: string, round: number): LabeledComparison {
  const [w, l] = preferred === 1 ? [1, 0] : [0, 1];
  return {
    id: c.id,
    prompt: c.prompt_text,
    chosen: c.responses[w]!,
    rejected: c.responses[l]!,
    ...(c.truncated[w] ? { chosen_truncated: true as const } : {}),
    ...(c.truncated[l] ? { rejected_truncated: true as const } : {}),
    ...(preferred === null ? { tie: true as const } : {}),
    labeler,
    round,
  };
}

/** Both completions of every comparison scored by `reward` (one call for all). */
export async function scorePairs(reward: RewardSource, comparisons: Comparison[]): Promise<[number, number][]> {
  const scores = await reward.score(comparisons.flatMap((c) => [c.prompt_text, c.prompt_text]), comparisons.flatMap((c) => c.responses));
  return comparisons.map((_, i) => [scores[2 * i]!, scores[2 * i + 1]!]);
}

/** Labels by a reward function: the higher-scored completion is chosen; equal scores are a tie. */
export async function labelByReward(reward: RewardSource, comparisons: Comparison[], round: number): Promise<LabeledComparison[]> {
  const scores = await scorePairs(reward, comparisons);
  return comparisons.map((c, i) => {
    const [a, b] = scores[i]!;
    return labeled(c, a === b ? null : a > b ? 0 : 1, reward.name, round);
  });
}
