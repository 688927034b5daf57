import type { ModelDescription } from "../models/load.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

/**
 * Every id that ends a sequence: config.json's eos_token_id and generation_config.json's (each one
 * id or a list: Llama 3 Instruct and Qwen2.5 Instruct list several stop tokens), and the tokenizer's.
 */
export function eosIdsOf(model: Pick<ModelDescription, "config" | "generationConfig">, tokenizer?: Tokenizer): number[] {
  const ids = new Set<number>();
  for (const eos of [model.config.eos_token_id, model.generationConfig?.eos_token_id]) {
    if (Array.isArray(eos)) eos.forEach((id) => ids.add(id));
    else if (typeof eos === "number") ids.add(eos);
  }
  if (tokenizer?.eosTokenId != null) ids.add(tokenizer.eosTokenId);
  return [...ids];
}
