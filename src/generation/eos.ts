import type { ModelConfig } from "../models/config.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

/** Every id that ends a sequence: the config's eos_token_id (one or a list) and the tokenizer's. */
export function eosIdsOf(config: ModelConfig, tokenizer?: Tokenizer): number[] {
  const ids = new Set<number>();
  const fromConfig = config.eos_token_id;
  if (Array.isArray(fromConfig)) fromConfig.forEach((id) => ids.add(id));
  else if (typeof fromConfig === "number") ids.add(fromConfig);
  if (tokenizer?.eosTokenId != null) ids.add(tokenizer.eosTokenId);
  return [...ids];
}
