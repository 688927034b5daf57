// Model configs with Hugging Face `config.json` field names, so a parsed config can be written
// back and loaded by `transformers` unchanged. `parseConfig` fills the defaults transformers
// would fill and refuses, naming file and field, any setting our implementations do not honour.

export interface SequenceClassificationFields {
  /** Set for `*ForSequenceClassification` (reward models); transformers defaults it to 2. */
  num_labels?: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  /** Sequence classifiers read the score at the last non-pad token, so they need this. */
  pad_token_id?: number | null;
}

export type LlamaArchitecture = "LlamaForCausalLM" | "LlamaForSequenceClassification" | "LlamaModel";
export type GPT2Architecture = "GPT2LMHeadModel" | "GPT2ForSequenceClassification" | "GPT2Model";

export interface LlamaConfig extends SequenceClassificationFields {
  model_type: "llama";
  architectures: LlamaArchitecture[];
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** Optional in config.json; parseConfig always fills it (hidden_size / num_attention_heads). */
  head_dim?: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: boolean;
  hidden_act: "silu";
  bos_token_id: number | null;
  /** A list in Llama 3 configs (several stop tokens). */
  eos_token_id: number | number[] | null;
  torch_dtype?: string;
}

export type GPT2Activation = "gelu_new" | "gelu";

export interface GPT2Config extends SequenceClassificationFields {
  model_type: "gpt2";
  architectures: GPT2Architecture[];
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; config.json's null means 4 * n_embd, which parseConfig fills in. */
  n_inner: number;
  /** "gelu_new" is the tanh approximation (so is "gelu_pytorch_tanh", parsed as "gelu_new"); "gelu" is exact erf. */
  activation_function: GPT2Activation;
  layer_norm_epsilon: number;
  tie_word_embeddings: boolean;
  /** Divide attention scores by sqrt(head_dim); true in every released GPT-2. */
  scale_attn_weights: boolean;
  bos_token_id: number | null;
  eos_token_id: number | null;
  torch_dtype?: string;
}

export type ModelConfig = LlamaConfig | GPT2Config;

export function llamaHeadDim(config: LlamaConfig): number {
  return config.head_dim ?? config.hidden_size / config.num_attention_heads;
}

export function isSequenceClassifier(config: ModelConfig): boolean {
  return config.architectures.some((a) => a.endsWith("ForSequenceClassification"));
}

// ---------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

/** Field readers that fill a default when the field is absent (or null, as transformers does) and name file+field when wrong. */
class Fields {
  constructor(readonly json: Json, readonly source: string) {}

  fail(field: string, why: string): never {
    throw new Error(`${this.source}: ${field} ${why}`);
  }

  has(field: string): boolean {
    return this.json[field] !== undefined && this.json[field] !== null;
  }

  int(field: string, fallback: number, min = 1): number {
    const v = this.has(field) ? this.json[field] : fallback;
    if (!Number.isSafeInteger(v) || (v as number) < min) this.fail(field, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v as number;
  }

  positive(field: string, fallback: number): number {
    const v = this.has(field) ? this.json[field] : fallback;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) this.fail(field, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.has(field) ? this.json[field] : fallback;
    if (typeof v !== "boolean") this.fail(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  tokenId(field: string, fallback: number | null): number | null {
    const v = this.json[field] === undefined ? fallback : this.json[field];
    if (v !== null && (!Number.isSafeInteger(v) || (v as number) < 0)) this.fail(field, `must be a token id or null, got ${JSON.stringify(v)}`);
    return v as number | null;
  }

  /** Fields whose non-default values change the math; we refuse rather than silently ignore them. */
  reject(field: string, isAllowed: (v: unknown) => boolean, why: string): void {
    if (this.json[field] !== undefined && !isAllowed(this.json[field])) {
      this.fail(field, `= ${JSON.stringify(this.json[field])} is not supported (${why})`);
    }
  }

  architectures<A extends string>(allowed: readonly A[], fallback: A): A[] {
    if (!this.has("architectures")) return [fallback];
    const v = this.json.architectures;
    if (!Array.isArray(v) || v.length === 0) this.fail("architectures", `must be a non-empty list, got ${JSON.stringify(v)}`);
    for (const a of v) {
      if (!allowed.includes(a as A)) this.fail("architectures", `contains ${JSON.stringify(a)}; supported: ${allowed.join(", ")}`);
    }
    return v as A[];
  }

  /** num_labels / id2label / label2id, filled only when present or when the model is a classifier. */
  classification(target: SequenceClassificationFields, classifier: boolean): void {
    if (this.has("pad_token_id")) target.pad_token_id = this.tokenId("pad_token_id", null);
    const id2label = this.json.id2label;
    if (id2label !== undefined && (!isStringRecord(id2label) || !Object.keys(id2label).every((k) => /^\d+$/.test(k)))) {
      this.fail("id2label", `must map label indices ("0", "1", ...) to names, got ${JSON.stringify(id2label)}`);
    }
    const label2id = this.json.label2id;
    if (label2id !== undefined && (typeof label2id !== "object" || label2id === null || !Object.values(label2id).every(Number.isSafeInteger))) {
      this.fail("label2id", `must map names to integers, got ${JSON.stringify(label2id)}`);
    }
    if (!classifier && !this.has("num_labels") && id2label === undefined) return;
    // transformers derives num_labels from id2label when both are absent-or-consistent; default 2.
    const fromLabels = id2label ? Object.keys(id2label).length : 2;
    const numLabels = this.int("num_labels", fromLabels);
    if (id2label && Object.keys(id2label).length !== numLabels) {
      this.fail("num_labels", `= ${numLabels} but id2label has ${Object.keys(id2label).length} entries`);
    }
    target.num_labels = numLabels;
    if (id2label) target.id2label = id2label as Record<string, string>;
    if (label2id) target.label2id = label2id as Record<string, number>;
  }

  dtype(): string | undefined {
    const v = this.json.torch_dtype ?? this.json.dtype; // transformers >= 4.56 writes "dtype"
    if (v !== undefined && v !== null && typeof v !== "string") this.fail("torch_dtype", `must be a string, got ${JSON.stringify(v)}`);
    return (v as string | null) ?? undefined;
  }
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string");
}

const isNullish = (v: unknown) => v === null || v === undefined;
const isFalse = (v: unknown) => v === false || v === null;

function parseLlama(f: Fields): LlamaConfig {
  // Defaults are transformers' LlamaConfig.__init__ defaults.
  f.reject("rope_scaling", isNullish, "only plain RoPE is implemented");
  f.reject("attention_bias", isFalse, "q/k/v/o projections have no bias here");
  f.reject("mlp_bias", isFalse, "MLP projections have no bias here");
  f.reject("sliding_window", isNullish, "attention is full causal");
  f.reject("use_sliding_window", isFalse, "attention is full causal");
  const act = f.json.hidden_act ?? "silu";
  if (act !== "silu") f.fail("hidden_act", `= ${JSON.stringify(act)} is not supported (Llama uses "silu")`);

  const hidden = f.int("hidden_size", 4096);
  const heads = f.int("num_attention_heads", 32);
  if (!f.has("head_dim") && hidden % heads !== 0) f.fail("num_attention_heads", `= ${heads} must divide hidden_size = ${hidden}`);
  const kvHeads = f.int("num_key_value_heads", heads);
  if (heads % kvHeads !== 0) f.fail("num_key_value_heads", `= ${kvHeads} must divide num_attention_heads = ${heads}`);
  const headDim = f.int("head_dim", hidden / heads);
  if (headDim * heads !== hidden) f.fail("head_dim", `= ${headDim} times ${heads} heads must equal hidden_size = ${hidden}`);
  if (headDim % 2 !== 0) f.fail("head_dim", `= ${headDim} must be even for rotary embeddings`);

  const eos = f.json.eos_token_id;
  const config: LlamaConfig = {
    model_type: "llama",
    architectures: f.architectures(["LlamaForCausalLM", "LlamaForSequenceClassification", "LlamaModel"], "LlamaForCausalLM"),
    vocab_size: f.int("vocab_size", 32000),
    hidden_size: hidden,
    intermediate_size: f.int("intermediate_size", 11008),
    num_hidden_layers: f.int("num_hidden_layers", 32),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    max_position_embeddings: f.int("max_position_embeddings", 2048),
    rms_norm_eps: f.positive("rms_norm_eps", 1e-6),
    rope_theta: f.positive("rope_theta", 10000),
    tie_word_embeddings: f.bool("tie_word_embeddings", false),
    hidden_act: "silu",
    bos_token_id: f.tokenId("bos_token_id", 1),
    eos_token_id: Array.isArray(eos) && eos.every((e) => Number.isSafeInteger(e) && e >= 0) ? (eos as number[]) : f.tokenId("eos_token_id", 2),
  };
  const dtype = f.dtype();
  if (dtype !== undefined) config.torch_dtype = dtype;
  f.classification(config, isSequenceClassifier(config));
  return config;
}

function parseGPT2(f: Fields): GPT2Config {
  // Defaults are transformers' GPT2Config.__init__ defaults (tie_word_embeddings from PretrainedConfig).
  f.reject("scale_attn_by_inverse_layer_idx", isFalse, "attention scores are scaled by 1/sqrt(head_dim) only");
  f.reject("add_cross_attention", isFalse, "decoder-only");
  const rawAct = f.json.activation_function ?? "gelu_new";
  // "gelu_pytorch_tanh" is the same tanh approximation as "gelu_new", computed by a fused kernel.
  const act = rawAct === "gelu_pytorch_tanh" ? "gelu_new" : rawAct;
  if (act !== "gelu_new" && act !== "gelu") {
    f.fail("activation_function", `= ${JSON.stringify(rawAct)} is not supported (use "gelu_new" or "gelu")`);
  }
  const embd = f.int("n_embd", 768);
  const heads = f.int("n_head", 12);
  if (embd % heads !== 0) f.fail("n_head", `= ${heads} must divide n_embd = ${embd}`);

  const config: GPT2Config = {
    model_type: "gpt2",
    architectures: f.architectures(["GPT2LMHeadModel", "GPT2ForSequenceClassification", "GPT2Model"], "GPT2LMHeadModel"),
    vocab_size: f.int("vocab_size", 50257),
    n_positions: f.int("n_positions", 1024),
    n_embd: embd,
    n_layer: f.int("n_layer", 12),
    n_head: heads,
    n_inner: f.int("n_inner", 4 * embd),
    activation_function: act,
    layer_norm_epsilon: f.positive("layer_norm_epsilon", 1e-5),
    tie_word_embeddings: f.bool("tie_word_embeddings", true),
    scale_attn_weights: f.bool("scale_attn_weights", true),
    bos_token_id: f.tokenId("bos_token_id", 50256),
    eos_token_id: f.tokenId("eos_token_id", 50256),
  };
  const dtype = f.dtype();
  if (dtype !== undefined) config.torch_dtype = dtype;
  f.classification(config, isSequenceClassifier(config));
  return config;
}

/** Parses a config.json object; `source` (usually the file path) prefixes every error. */
export function parseConfig(json: unknown, source: string): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(`${source}: expected a JSON object`);
  }
  const f = new Fields(json as Json, source);
  switch (f.json.model_type) {
    case "llama":
      return parseLlama(f);
    case "gpt2":
      return parseGPT2(f);
    case undefined:
      return f.fail("model_type", `is missing (supported: "llama", "gpt2")`);
    default:
      return f.fail("model_type", `${JSON.stringify(f.json.model_type)} is not supported (supported: "llama", "gpt2")`);
  }
}
