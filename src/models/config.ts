// Model configs with Hugging Face `config.json` field names, so a parsed config can be written
// back and loaded by `transformers` unchanged. `parseConfig` finds the architecture by model_type
// (registry.ts); the architecture's file parses the rest, filling the defaults transformers would
// fill and refusing, naming file and field, any setting its implementation does not honour.
import { ConfigError, Fields } from "./config-fields.ts";
import { familyNamed, MODEL_TYPES, type ModelConfig } from "./registry.ts";

export type { ModelConfig };
export { isSequenceClassifier } from "./config-fields.ts";

/** Parses a config.json object; `source` (usually the file path) prefixes every error. */
export function parseConfig(json: unknown, source: string): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(`${source}: expected a JSON object`);
  }
  const f: Fields = new Fields(json as Record<string, unknown>, source);
  const supported = `supported: ${MODEL_TYPES.map((t) => JSON.stringify(t)).join(", ")}`;
  if (!f.has("model_type")) f.fail("model_type", `is missing (${supported})`);
  const family = familyNamed(f.json.model_type);
  if (!family) f.fail("model_type", `${JSON.stringify(f.json.model_type)} is not supported (${supported})`);
  return family.parseConfig(f);
}
