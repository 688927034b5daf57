// What every architecture's config shares, and the field readers its parser is written with.
// Field names are Hugging Face `config.json` names, so a parsed config can be written back and
// loaded by `transformers` unchanged; readers fill transformers' defaults and refuse, naming file
// and field, any value an implementation does not honour.
import { InputError } from "../io/errors.ts";

/** A config.json the implementations cannot honour; the CLI prints the one-line message without a stack. */
export class ConfigError extends InputError {}

export interface SequenceClassificationFields {
  /** Set for `*ForSequenceClassification` (reward models); transformers defaults it to 2. */
  num_labels?: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  /** Sequence classifiers read the score at the last non-pad token, so they need this. */
  pad_token_id?: number | null;
}

/** The fields code outside the architecture files may read. */
export interface BaseConfig extends SequenceClassificationFields {
  model_type: string;
  architectures: string[];
  vocab_size: number;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  /** A list in Llama 3 and some Qwen configs (several stop tokens). */
  eos_token_id: number | number[] | null;
  torch_dtype?: string;
  /** Standard deviation of a fresh weight matrix (`rlhf init`); set when config.json has it, 0.02 otherwise (transformers' default). */
  initializer_range?: number;
}

/** std of a freshly initialised weight matrix: the config's initializer_range, else transformers' 0.02. */
export function initStd(config: Pick<BaseConfig, "initializer_range">): number {
  return config.initializer_range ?? 0.02;
}

export function isSequenceClassifier(config: Pick<BaseConfig, "architectures">): boolean {
  return config.architectures.some((a) => a.endsWith("ForSequenceClassification"));
}

/**
 * Llama 3's `rope_scaling`: low frequencies divided by `factor`, high ones kept, the band between
 * interpolated (transformers' `_compute_llama3_parameters`; see layers.ropeInvFreq).
 */
export interface Llama3RopeScaling {
  rope_type: "llama3";
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

// ---------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

export const isNullish = (v: unknown) => v === null || v === undefined;
export const isFalse = (v: unknown) => v === false || v === null;
export const isListOf = (v: unknown, ok: (x: unknown) => boolean) => Array.isArray(v) && v.every(ok);

/** The first of one or several token ids (eos_token_id may be a list). */
export function firstTokenId(ids: number | number[] | null): number | null {
  return Array.isArray(ids) ? ids[0]! : ids;
}

/** Field readers that fill a default when the field is absent (or null, as transformers does) and name file+field when wrong. */
export class Fields {
  constructor(readonly json: Json, readonly source: string) {}

  fail(field: string, why: string): never {
    throw new ConfigError(`${this.source}: ${field} ${why}`);
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
    if (v !== null && !isTokenId(v)) this.fail(field, `must be a token id or null, got ${JSON.stringify(v)}`);
    return v as number | null;
  }

  /** A token id, a non-empty list of them (eos_token_id in Llama 3), or null. */
  tokenIds(field: string, fallback: number | null): number | number[] | null {
    const v = this.json[field];
    if (!Array.isArray(v)) return this.tokenId(field, fallback);
    if (v.length === 0 || !v.every(isTokenId)) this.fail(field, `must be a token id, a non-empty list of token ids, or null, got ${JSON.stringify(v)}`);
    return v as number[];
  }

  /** Fields whose non-default values change the math; we refuse rather than silently ignore them. */
  reject(field: string, isAllowed: (v: unknown) => boolean, why: string): void {
    if (this.json[field] !== undefined && !isAllowed(this.json[field])) {
      this.fail(field, `= ${JSON.stringify(this.json[field])} is not supported (${why})`);
    }
  }

  architectures(allowed: readonly string[], fallback: string): string[] {
    if (!this.has("architectures")) return [fallback];
    const v = this.json.architectures;
    if (!Array.isArray(v) || v.length === 0) this.fail("architectures", `must be a non-empty list, got ${JSON.stringify(v)}`);
    for (const a of v) {
      if (!allowed.includes(a as string)) this.fail("architectures", `contains ${JSON.stringify(a)}; supported: ${allowed.join(", ")}`);
    }
    return v as string[];
  }

  /**
   * `rope_scaling`: absent, null or `{rope_type: "default"}` is plain RoPE (undefined); Llama 3's
   * rule is implemented; every other type is refused. transformers reads `rope_type`, falling back
   * to the older key `type`.
   */
  ropeScaling(): Llama3RopeScaling | undefined {
    const v = this.json.rope_scaling;
    if (isNullish(v)) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) this.fail("rope_scaling", `must be an object or null, got ${JSON.stringify(v)}`);
    const s = v as Json;
    const type = s.rope_type ?? s.type;
    if (type === "default") return undefined;
    if (type !== "llama3") {
      this.fail("rope_scaling", `= ${JSON.stringify(v)} is not supported (implemented: plain RoPE and rope_type "llama3")`);
    }
    const inner = new Fields(s, `${this.source}: rope_scaling`);
    const need = (field: string) => {
      if (!inner.has(field)) inner.fail(field, `is required for rope_type "llama3"`);
    };
    ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"].forEach(need);
    const scaling: Llama3RopeScaling = {
      rope_type: "llama3",
      factor: inner.positive("factor", 1),
      low_freq_factor: inner.positive("low_freq_factor", 1),
      high_freq_factor: inner.positive("high_freq_factor", 1),
      original_max_position_embeddings: inner.int("original_max_position_embeddings", 1),
    };
    if (scaling.high_freq_factor <= scaling.low_freq_factor) {
      inner.fail("high_freq_factor", `= ${scaling.high_freq_factor} must be larger than low_freq_factor = ${scaling.low_freq_factor}`);
    }
    return scaling;
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

  /** The fields every config ends with: torch_dtype when given, and the classification fields. */
  finish<C extends BaseConfig>(config: C): C {
    const dtype = this.dtype();
    if (dtype !== undefined) config.torch_dtype = dtype;
    if (this.has("initializer_range")) config.initializer_range = this.positive("initializer_range", 0.02);
    this.classification(config, isSequenceClassifier(config));
    return config;
  }
}

function isTokenId(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string");
}
