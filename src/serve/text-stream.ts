// A choice's text as it grows token by token: what is safe to send now, and where a stop string
// ends it. Text is held back while it might still change: a partial UTF-8 character (decoded as
// U+FFFD until its last byte arrives) or an ending that could be the start of a stop string, which
// the client must never see.
import { completionText, stopIndex } from "../generation/text.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

// Prompt tokens decoded with the completion: enough for the joining space (and a character split
// across the boundary), without decoding a long prompt again at every token (0.4-0.7 ms for 400
// tokens, times every row of every step).
const PROMPT_TAIL = 8;

export class TextStream {
  /** The text so far (cut before the stop string once one is found). */
  text = "";
  #sent = 0;
  readonly #promptTail: number[];

  constructor(
    private readonly tokenizer: Tokenizer,
    promptIds: number[],
    private readonly stops: readonly string[],
  ) {
    this.#promptTail = promptIds.slice(-PROMPT_TAIL);
  }

  /** After a new token: the text to send now, and whether a stop string ended the choice. */
  push(completionIds: number[]): { delta: string; stopped: boolean } {
    const text = completionText(this.tokenizer, this.#promptTail, completionIds);
    const at = stopIndex(text, this.stops);
    if (at >= 0) {
      this.text = text.slice(0, at);
      return { delta: this.#take(this.text.length), stopped: true };
    }
    this.text = text;
    return { delta: this.#take(text.length - heldBack(text, this.stops)), stopped: false };
  }

  /** At the end of the choice: whatever was held back. */
  flush(): string {
    return this.#take(this.text.length);
  }

  #take(end: number): string {
    if (end <= this.#sent) return "";
    const delta = this.text.slice(this.#sent, end);
    this.#sent = end;
    return delta;
  }
}

/** Characters at the end of `text` that may still change: trailing U+FFFD, or the longest start of a stop string. */
function heldBack(text: string, stops: readonly string[]): number {
  let held = 0;
  while (held < text.length && text[text.length - 1 - held] === "\uFFFD") held++;
  for (const stop of stops) {
    for (let k = Math.min(stop.length - 1, text.length); k > held; k--) {
      if (text.endsWith(stop.slice(0, k))) {
        held = k;
        break;
      }
    }
  }
  return held;
}
