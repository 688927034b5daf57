// Llama (Llama 2 and 3, SmolLM, TinyLlama, llama2.c's models): RMSNorm, rotary positions (with
// Llama 3's frequency rescaling), SwiGLU MLP, grouped-query attention, tied or untied head.
// Parameter names are transformers' LlamaForCausalLM names.
import type { Array } from "../engine/runtime.ts";
import type { TensorMap } from "../io/tensors.ts";
import { initStd, isFalse, isNullish, type BaseConfig, type Fields, type Llama3RopeScaling } from "./config-fields.ts";
import { applyRope, attention, lastQueryOnly, lookup, project, rmsNorm, ropeInvFreq, ropeTables, silu, writeCache } from "./layers.ts";
import type { Backbone, BodyOutput, ForwardBatch, InitRule, ModelFamily, Params, ParamShapes, PastState } from "./types.ts";

export interface LlamaConfig extends BaseConfig {
  model_type: "llama";
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** Optional in config.json; parseLlama always fills it (hidden_size / num_attention_heads). */
  head_dim?: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  /** Present only for Llama 3's rule; plain RoPE otherwise. */
  rope_scaling?: Llama3RopeScaling;
  hidden_act: "silu";
}

/** Defaults are transformers' LlamaConfig.__init__ defaults. */
function parseLlama(f: Fields): LlamaConfig {
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

  const config: LlamaConfig = {
    model_type: "llama",
    architectures: f.architectures(Object.values(llama.classes), llama.classes.causalLm),
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
    eos_token_id: f.tokenIds("eos_token_id", 2),
  };
  const ropeScaling = f.ropeScaling();
  if (ropeScaling) config.rope_scaling = ropeScaling;
  return f.finish(config);
}

export function llamaHeadDim(c: LlamaConfig): number {
  return c.head_dim ?? c.hidden_size / c.num_attention_heads;
}

export function llamaParamShapes(c: LlamaConfig): ParamShapes {
  const d = c.hidden_size;
  const hd = llamaHeadDim(c);
  const shapes: ParamShapes = { "model.embed_tokens.weight": [c.vocab_size, d] };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    shapes[p + "input_layernorm.weight"] = [d];
    shapes[p + "self_attn.q_proj.weight"] = [c.num_attention_heads * hd, d];
    shapes[p + "self_attn.k_proj.weight"] = [c.num_key_value_heads * hd, d];
    shapes[p + "self_attn.v_proj.weight"] = [c.num_key_value_heads * hd, d];
    shapes[p + "self_attn.o_proj.weight"] = [d, c.num_attention_heads * hd];
    shapes[p + "post_attention_layernorm.weight"] = [d];
    shapes[p + "mlp.gate_proj.weight"] = [c.intermediate_size, d];
    shapes[p + "mlp.up_proj.weight"] = [c.intermediate_size, d];
    shapes[p + "mlp.down_proj.weight"] = [d, c.intermediate_size];
  }
  shapes["model.norm.weight"] = [d];
  if (!c.tie_word_embeddings) shapes["lm_head.weight"] = [c.vocab_size, d];
  return shapes;
}

/** transformers' LlamaPreTrainedModel._init_weights: N(0, initializer_range) matrices, unit norms. */
export function llamaInitRule(c: LlamaConfig) {
  const std = initStd(c);
  return (name: string): InitRule => (name.endsWith("norm.weight") ? { std: 0, constant: 1 } : { std });
}

export function llamaBody(c: LlamaConfig, params: Params, batch: ForwardBatch, past?: PastState): BodyOutput {
  const [b, t] = batch.inputIds.shape as [number, number];
  const hd = llamaHeadDim(c);
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
    const linear = (input: Array, m: string) => project(params, `model.layers.${i}.${m}`, input, batch);
    const h = rmsNorm(x.ref, p("input_layernorm.weight"), eps);
    const q = applyRope(linear(h.ref, "self_attn.q_proj").reshape([b, t, nH, hd]), cos.ref, sin.ref);
    let k = applyRope(linear(h.ref, "self_attn.k_proj").reshape([b, t, nKv, hd]), cos.ref, sin.ref);
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
    const gated = silu(linear(m.ref, "mlp.gate_proj")).mul(linear(m, "mlp.up_proj"));
    x = x.add(linear(gated, "mlp.down_proj"));
  }
  const hidden = rmsNorm(x, params["model.norm.weight"]!.ref, eps);
  return { hidden, present: { keys, values } };
}

function build(c: LlamaConfig): Backbone {
  return {
    paramShapes: llamaParamShapes(c),
    initRule: llamaInitRule(c),
    lmHeadName: c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight",
    body: (params, batch, past) => llamaBody(c, params, batch, past),
    transposedForDecoding: [],
    numLayers: c.num_hidden_layers,
    numKvHeads: c.num_key_value_heads,
    headDim: llamaHeadDim(c),
    hiddenSize: c.hidden_size,
    vocabSize: c.vocab_size,
    maxPositions: c.max_position_embeddings,
    trainFloatsPerOutput: 3.0, // measured: SmolLM2-135M's shape at 1 × 256 and 1 × 512: 2.9 and 3.0
  };
}

/** `rotary_emb.inv_freq` is a recomputable buffer that older transformers saved; it is not a weight. */
function checkpointNames(tensors: TensorMap): TensorMap {
  return new Map([...tensors].filter(([name]) => !name.endsWith(".rotary_emb.inv_freq")));
}

export const llama: ModelFamily<LlamaConfig> = {
  modelType: "llama",
  classes: { causalLm: "LlamaForCausalLM", sequenceClassifier: "LlamaForSequenceClassification", backbone: "LlamaModel" },
  parseConfig: parseLlama,
  build,
  checkpointNames,
  defaultPadId: () => 0, // <unk> in Llama 2's and llama2.c's vocabularies
  defaultLoraTargets: ["q_proj", "v_proj"],
};
