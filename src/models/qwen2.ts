// Qwen2 and Qwen2.5: Llama's block (RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention)
// with biases on the query, key and value projections (not on the output projection), rope_theta
// 1e6 in Qwen2.5, a tied head in the small models, and a vocabulary padded past the tokenizer's.
// Parameter names are transformers' Qwen2ForCausalLM names.
import type { Array } from "../engine/runtime.ts";
import type { TensorMap } from "../io/tensors.ts";
import { firstTokenId, initStd, isListOf, type BaseConfig, type Fields, type Llama3RopeScaling } from "./config-fields.ts";
import { applyRope, attention, lastQueryOnly, lookup, project, rmsNorm, ropeInvFreq, ropeTables, silu, writeCache } from "./layers.ts";
import type { Backbone, BodyOutput, ForwardBatch, InitRule, ModelFamily, Params, ParamShapes, PastState } from "./types.ts";

export interface Qwen2Config extends BaseConfig {
  model_type: "qwen2";
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling?: Llama3RopeScaling;
  hidden_act: "silu";
  /** Always false here (refused otherwise); sliding_window and max_window_layers are then unused, as in transformers. */
  use_sliding_window: false;
  sliding_window: number | null;
  max_window_layers: number;
}

/** Defaults are transformers' Qwen2Config.__init__ defaults. */
function parseQwen2(f: Fields): Qwen2Config {
  // transformers applies sliding_window (to layers >= max_window_layers) only when use_sliding_window is true.
  f.reject("use_sliding_window", (v) => v === false || v === null, "attention is full causal; sliding-window attention is not implemented");
  f.reject("layer_types", (v) => isListOf(v, (t) => t === "full_attention"), "attention is full causal in every layer");
  const act = f.json.hidden_act ?? "silu";
  if (act !== "silu") f.fail("hidden_act", `= ${JSON.stringify(act)} is not supported (Qwen2 uses "silu")`);

  const hidden = f.int("hidden_size", 4096);
  const heads = f.int("num_attention_heads", 32);
  if (hidden % heads !== 0) f.fail("num_attention_heads", `= ${heads} must divide hidden_size = ${hidden}`);
  if ((hidden / heads) % 2 !== 0) f.fail("num_attention_heads", `= ${heads} gives head_dim ${hidden / heads}, which must be even for rotary embeddings`);
  f.reject("head_dim", (v) => v === null || v === hidden / heads, `Qwen2's head_dim is hidden_size / num_attention_heads = ${hidden / heads}`);
  const kvHeads = f.int("num_key_value_heads", heads);
  if (heads % kvHeads !== 0) f.fail("num_key_value_heads", `= ${kvHeads} must divide num_attention_heads = ${heads}`);
  const layers = f.int("num_hidden_layers", 32);

  const config: Qwen2Config = {
    model_type: "qwen2",
    architectures: f.architectures(Object.values(qwen2.classes), qwen2.classes.causalLm),
    vocab_size: f.int("vocab_size", 151936),
    hidden_size: hidden,
    intermediate_size: f.int("intermediate_size", 22016),
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    max_position_embeddings: f.int("max_position_embeddings", 32768),
    rms_norm_eps: f.positive("rms_norm_eps", 1e-6),
    rope_theta: f.positive("rope_theta", 10000),
    tie_word_embeddings: f.bool("tie_word_embeddings", false),
    hidden_act: "silu",
    use_sliding_window: false,
    sliding_window: f.has("sliding_window") ? f.int("sliding_window", 4096) : null,
    max_window_layers: f.int("max_window_layers", 28, 0),
    bos_token_id: f.tokenId("bos_token_id", null),
    eos_token_id: f.tokenIds("eos_token_id", null),
  };
  const ropeScaling = f.ropeScaling();
  if (ropeScaling) config.rope_scaling = ropeScaling;
  return f.finish(config);
}

function headDim(c: Qwen2Config): number {
  return c.hidden_size / c.num_attention_heads;
}

export function qwen2ParamShapes(c: Qwen2Config): ParamShapes {
  const d = c.hidden_size;
  const qDim = c.num_attention_heads * headDim(c);
  const kvDim = c.num_key_value_heads * headDim(c);
  const shapes: ParamShapes = { "model.embed_tokens.weight": [c.vocab_size, d] };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    shapes[p + "input_layernorm.weight"] = [d];
    shapes[p + "self_attn.q_proj.weight"] = [qDim, d];
    shapes[p + "self_attn.q_proj.bias"] = [qDim];
    shapes[p + "self_attn.k_proj.weight"] = [kvDim, d];
    shapes[p + "self_attn.k_proj.bias"] = [kvDim];
    shapes[p + "self_attn.v_proj.weight"] = [kvDim, d];
    shapes[p + "self_attn.v_proj.bias"] = [kvDim];
    shapes[p + "self_attn.o_proj.weight"] = [d, qDim];
    shapes[p + "post_attention_layernorm.weight"] = [d];
    shapes[p + "mlp.gate_proj.weight"] = [c.intermediate_size, d];
    shapes[p + "mlp.up_proj.weight"] = [c.intermediate_size, d];
    shapes[p + "mlp.down_proj.weight"] = [d, c.intermediate_size];
  }
  shapes["model.norm.weight"] = [d];
  if (!c.tie_word_embeddings) shapes["lm_head.weight"] = [c.vocab_size, d];
  return shapes;
}

/** transformers' Qwen2PreTrainedModel._init_weights: N(0, initializer_range) matrices, zero biases, unit norms. */
export function qwen2InitRule(c: Qwen2Config) {
  const std = initStd(c);
  return (name: string): InitRule => {
    if (name.endsWith(".bias")) return { std: 0, constant: 0 };
    return name.endsWith("norm.weight") ? { std: 0, constant: 1 } : { std };
  };
}

export function qwen2Body(c: Qwen2Config, params: Params, batch: ForwardBatch, past?: PastState): BodyOutput {
  const [b, t] = batch.inputIds.shape as [number, number];
  const hd = headDim(c);
  const nH = c.num_attention_heads;
  const nKv = c.num_key_value_heads;
  const eps = c.rms_norm_eps;
  const cutLast = batch.lastPositionOnly ?? false;
  const { cos, sin } = ropeTables(batch.positionIds, ropeInvFreq(hd, c.rope_theta, c.rope_scaling)); // [B, T, 1, hd]
  let x = lookup(params["model.embed_tokens.weight"]!.ref, batch.inputIds); // [B, T, D]
  const keys: Array[] = [];
  const values: Array[] = [];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = (name: string) => params[`model.layers.${i}.${name}`]!.ref;
    // Each projection adds its bias when the checkpoint has one (q, k and v do, o does not).
    const linear = (input: Array, m: string) => project(params, `model.layers.${i}.${m}`, input, batch);
    const h = rmsNorm(x.ref, p("input_layernorm.weight"), eps);
    const q = applyRope(linear(h.ref, "self_attn.q_proj").reshape([b, t, nH, hd]), cos.ref, sin.ref); // [B, T, nH, hd]
    let k = applyRope(linear(h.ref, "self_attn.k_proj").reshape([b, t, nKv, hd]), cos.ref, sin.ref); // [B, T, nKV, hd]
    let v = linear(h, "self_attn.v_proj").reshape([b, t, nKv, hd]);
    if (past) {
      k = writeCache(past.keys[i]!, k, past.slotOneHot.ref); // [B, S, nKV, hd]
      v = writeCache(past.values[i]!, v, past.slotOneHot.ref);
    }
    keys.push(k.ref);
    values.push(v.ref);
    const [xs, qs, bias] = lastQueryOnly(cutLast && i === c.num_hidden_layers - 1, x, q, batch.bias.ref);
    const attn = attention(qs, k, v, bias); // [B, T, nH·hd]
    x = xs.add(linear(attn, "self_attn.o_proj"));
    const m = rmsNorm(x.ref, p("post_attention_layernorm.weight"), eps);
    const gated = silu(linear(m.ref, "mlp.gate_proj")).mul(linear(m, "mlp.up_proj")); // [B, T, F]
    x = x.add(linear(gated, "mlp.down_proj"));
  }
  const hidden = rmsNorm(x, params["model.norm.weight"]!.ref, eps);
  return { hidden, present: { keys, values } };
}

function build(c: Qwen2Config): Backbone {
  return {
    paramShapes: qwen2ParamShapes(c),
    initRule: qwen2InitRule(c),
    lmHeadName: c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight",
    body: (params, batch, past) => qwen2Body(c, params, batch, past),
    transposedForDecoding: [],
    numLayers: c.num_hidden_layers,
    numKvHeads: c.num_key_value_heads,
    headDim: headDim(c),
    hiddenSize: c.hidden_size,
    vocabSize: c.vocab_size,
    maxPositions: c.max_position_embeddings,
    trainFloatsPerOutput: 3.55, // measured through LoRA steps (memory-plan.ts): Qwen2.5-0.5B's shape at 1 × 128 and 2 × 128, its wide MLP keeping more per output than Llama's
  };
}

/** `rotary_emb.inv_freq` is a recomputable buffer, not a weight. */
function checkpointNames(tensors: TensorMap): TensorMap {
  return new Map([...tensors].filter(([name]) => !name.endsWith(".rotary_emb.inv_freq")));
}

export const qwen2: ModelFamily<Qwen2Config> = {
  modelType: "qwen2",
  classes: { causalLm: "Qwen2ForCausalLM", sequenceClassifier: "Qwen2ForSequenceClassification", backbone: "Qwen2Model" },
  parseConfig: parseQwen2,
  build,
  checkpointNames,
  // Qwen's tokenizers pad with <|endoftext|>, the base models' eos_token_id.
  defaultPadId: (c) => firstTokenId(c.eos_token_id) ?? 0,
  defaultLoraTargets: ["q_proj", "v_proj"],
};
