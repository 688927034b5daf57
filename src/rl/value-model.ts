// Building the value model for PPO: from a reward model (TRL's choice: it starts out predicting
// something like the score) or from the policy's backbone with a fresh scalar head.
import { fromHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { architectureFor, SCORE_HEAD, type Architecture } from "../models/architecture.ts";
import type { ModelConfig } from "../models/config.ts";
import { copyParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";

/** The sequence-classifier config of a causal LM config (num_labels 1), as transformers names it. */
export function classifierConfig(config: ModelConfig, padTokenId: number): ModelConfig {
  const architectures = [config.model_type === "llama" ? "LlamaForSequenceClassification" : "GPT2ForSequenceClassification"];
  return { ...config, architectures, num_labels: 1, pad_token_id: padTokenId } as ModelConfig;
}

/**
 * Backbone weights copied from `params`, plus `score.weight` drawn N(0, 1/(D+1)) as
 * transformers initialises a fresh classification head (lm_head dropped).
 */
export function classifierFromBackbone(config: ModelConfig, params: Params, padTokenId: number, seed: number): { config: ModelConfig; arch: Architecture; params: Params } {
  const cls = classifierConfig(config, padTokenId);
  const arch = architectureFor(cls);
  const copied = copyParams(params);
  const out: Params = {};
  for (const name of Object.keys(arch.paramShapes)) if (name !== SCORE_HEAD) out[name] = copied[name]!;
  for (const [name, p] of Object.entries(copied)) if (!(name in out)) p.dispose();
  const d = arch.hiddenSize;
  const rng = new HostRng(seed);
  const head = new Float32Array(d).map(() => rng.normal() / Math.sqrt(d + 1));
  out[SCORE_HEAD] = fromHost(head, [1, d]);
  return { config: cls, arch, params: out };
}
