// Fixtures for the RL tests: a tiny Llama and a letter tokenizer, so trainers and evaluation run
// in seconds. A programmatic reward (the share of one letter) gives a learnable signal.
import { parseConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { ModuleRewardSource } from "./reward-source.ts";

export const tinyPolicyConfig = parseConfig(
  { model_type: "llama", architectures: ["LlamaForCausalLM"], vocab_size: 12, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 },
  "tiny policy",
);
export const tinyArch = architectureFor(tinyPolicyConfig);

/** Letters a..i are ids 3..11 (0 pad, 1 BOS, 2 EOS); text is the letters. */
export const letters: Tokenizer = {
  vocabSize: 12,
  bosTokenId: 1,
  eosTokenId: 2,
  padTokenId: 0,
  chatTemplate: null,
  modelMaxLength: null,
  encode: (text, o) => [...(o?.addSpecialTokens === false ? [] : [1]), ...[...text].map((ch) => ch.charCodeAt(0) - 97 + 3)],
  decode: (ids) => ids.filter((i) => i >= 3).map((i) => String.fromCharCode(i - 3 + 97)).join(""),
  save: async () => {},
};

/** Reward: the share of "e" in the completion. */
export const shareOfE = new ModuleRewardSource("share-of-e", (_p, cs) => cs.map((c) => (c.length ? [...c].filter((ch) => ch === "e").length / c.length : 0)));

export { documentedMetrics } from "../train/test-helpers.ts";
