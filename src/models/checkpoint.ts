// Between the tensors a Hugging Face checkpoint stores and the parameters an architecture has.
// Reading accepts what the ecosystem writes: the architecture's own quirks (registry.ts), tied
// embeddings stored under either name or both, and the aliases safetensors savers record for the
// names they dropped. Writing produces what transformers writes: a tied matrix stored once.
import { CheckpointError } from "../io/errors.ts";
import type { TensorMap } from "../io/tensors.ts";
import { architectureFor } from "./architecture.ts";
import { isSequenceClassifier } from "./config-fields.ts";
import type { ModelConfig } from "./config.ts";
import { familyOf } from "./registry.ts";

/** Written into config.json; transformers only warns when a checkpoint claims a newer version than its own. */
const TRANSFORMERS_VERSION = "4.46.0";

const LM_HEAD = "lm_head.weight";

/** The config.json transformers expects: our fields plus the bookkeeping fields it writes itself. */
export function configToJson(config: ModelConfig): Record<string, unknown> {
  const { architectures, model_type, ...rest } = config;
  return { architectures, model_type, ...rest, torch_dtype: "float32", transformers_version: TRANSFORMERS_VERSION };
}

/**
 * A checkpoint's stored tensors under the architecture's parameter names.
 * - `metadata` aliases `{dropped name: kept name}` (what safetensors' save_model and the Hub's
 *   converter record for tied weights) are followed, before any renaming;
 * - the architecture's quirks (missing prefixes, recomputable buffers) are undone;
 * - tied: the embedding may be stored as itself, as `lm_head.weight` (tinystories-656k), or both;
 *   transformers ties the head to the embedding, so the embedding wins when both are present;
 * - untied causal LMs must store `lm_head.weight`.
 */
export function parametersFromCheckpoint(config: ModelConfig, stored: TensorMap, metadata: Record<string, string>, source: string): TensorMap {
  const aliased = new Map(stored);
  for (const [alias, kept] of Object.entries(metadata)) {
    if (!aliased.has(alias) && stored.has(kept)) aliased.set(alias, stored.get(kept)!);
  }
  const tensors = familyOf(config).checkpointNames(aliased);
  if (config.tie_word_embeddings) {
    const embedding = architectureFor(config).lmHeadName;
    if (!tensors.has(embedding) && tensors.has(LM_HEAD)) tensors.set(embedding, tensors.get(LM_HEAD)!);
    tensors.delete(LM_HEAD);
  } else if (isCausalLm(config) && !tensors.has(LM_HEAD)) {
    throw new CheckpointError(`${source}: tie_word_embeddings is false but the checkpoint has no ${LM_HEAD}`);
  }
  return tensors;
}

/**
 * Parameters → the tensors and safetensors metadata to store. A tied causal LM stores its
 * embedding once under the embedding's name, as transformers' save_pretrained does (lm_head.weight
 * is in every *ForCausalLM's _tied_weights_keys), and records `{"lm_head.weight": embedding}` in
 * the metadata the way safetensors' save_model records a dropped alias; transformers reads only
 * `format` from the metadata and re-ties the head on load.
 */
export function checkpointFromParameters(config: ModelConfig, params: TensorMap): { tensors: TensorMap; metadata: Record<string, string> } {
  const metadata: Record<string, string> = { format: "pt" };
  if (!config.tie_word_embeddings) return { tensors: params, metadata };
  const tensors = new Map([...params].filter(([name]) => name !== LM_HEAD));
  if (isCausalLm(config)) metadata[LM_HEAD] = architectureFor(config).lmHeadName;
  return { tensors, metadata };
}

function isCausalLm(config: ModelConfig): boolean {
  return !isSequenceClassifier(config) && config.architectures.includes(familyOf(config).classes.causalLm);
}
