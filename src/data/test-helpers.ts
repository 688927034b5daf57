// Helpers for the data tests.
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

/** One token per character (its code), BOS 1, EOS 2: token ids read back as the text they came from. */
export const chars: Tokenizer = {
  vocabSize: 256,
  bosTokenId: 1,
  eosTokenId: 2,
  padTokenId: 0,
  chatTemplate: null,
  modelMaxLength: null,
  encode: (text, o) => [...(o?.addSpecialTokens === false ? [] : [1]), ...[...text].map((c) => c.charCodeAt(0))],
  decode: (ids) => String.fromCharCode(...ids.filter((i) => i > 2)),
  save: async () => {},
};
