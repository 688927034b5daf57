// A completion's text: decoded after its prompt, and cut at the first stop string.
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

/** Where the first of `stops` begins in `text`, or -1. */
export function stopIndex(text: string, stops: readonly string[]): number {
  let cut = -1;
  for (const s of stops) {
    const at = text.indexOf(s);
    if (at >= 0 && (cut < 0 || at < cut)) cut = at;
  }
  return cut;
}

/** `text` up to the first of `stops` (all of it when none occurs). */
export function cutAtStop(text: string, stops: readonly string[]): string {
  const at = stopIndex(text, stops);
  return at < 0 ? text : text.slice(0, at);
}

/**
 * The completion's text as it reads after the prompt. Decoding prompt and completion together gets
 * the joining space right (sentencepiece drops the space after BOS and keeps the one between prompt
 * and completion), so the completion is what the whole adds to the prompt's own text.
 */
export function completionText(tokenizer: Tokenizer, promptIds: number[], completionIds: number[]): string {
  const prompt = tokenizer.decode(promptIds, { skipSpecialTokens: true });
  const full = tokenizer.decode([...promptIds, ...completionIds], { skipSpecialTokens: true });
  return full.startsWith(prompt) ? full.slice(prompt.length) : tokenizer.decode(completionIds, { skipSpecialTokens: true });
}
