// The architectures, one registration line each. Everything that differs between them lives in
// the architecture's own file (ModelFamily in types.ts); config.json's model_type picks one here
// and nowhere else.
import { gpt2 } from "./gpt2.ts";
import { llama } from "./llama.ts";
import { qwen2 } from "./qwen2.ts";
import type { ModelFamily } from "./types.ts";

const FAMILIES = [
  llama,
  gpt2,
  qwen2,
] as const;

/** A parsed config.json of any registered architecture, discriminated by model_type. */
export type ModelConfig = ReturnType<(typeof FAMILIES)[number]["parseConfig"]>;

/** The model_type values config.json may name. */
export const MODEL_TYPES: readonly string[] = FAMILIES.map((f) => f.modelType);

/** The architecture registered for a model_type, or undefined. */
export function familyNamed(modelType: unknown): ModelFamily<ModelConfig> | undefined {
  // Each family only ever receives configs it parsed itself, so widening its config type is safe.
  return FAMILIES.find((f) => f.modelType === modelType) as ModelFamily<ModelConfig> | undefined;
}

/** The architecture a parsed config belongs to. */
export function familyOf(config: ModelConfig): ModelFamily<ModelConfig> {
  return familyNamed(config.model_type)!;
}
