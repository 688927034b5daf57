// GPT-2: learned positions, pre-LayerNorm blocks, GELU MLP, biases everywhere, Conv1D weight layout
// ([in, out]). Parameter names are transformers' GPT2LMHeadModel names.
import type { Array } from "../engine/runtime.ts";
import type { TensorMap } from "../io/tensors.ts";
import { initStd, isFalse, type BaseConfig, type Fields } from "./config-fields.ts";
import { attention, lookup, geluErf, geluTanh, lastQueryOnly, layerNorm, project as projection, writeCache } from "./layers.ts";
import type { Backbone, BodyOutput, ForwardBatch, InitRule, ModelFamily, Params, ParamShapes, PastState } from "./types.ts";

export type GPT2Activation = "gelu_new" | "gelu";

export interface GPT2Config extends BaseConfig {
  model_type: "gpt2";
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; config.json's null means 4 * n_embd, which parseGPT2 fills in. */
  n_inner: number;
  /** "gelu_new" is the tanh approximation (so is "gelu_pytorch_tanh", parsed as "gelu_new"); "gelu" is exact erf. */
  activation_function: GPT2Activation;
  layer_norm_epsilon: number;
  /** Divide attention scores by sqrt(head_dim); true in every released GPT-2. */
  scale_attn_weights: boolean;
  eos_token_id: number | null;
}

/** Defaults are transformers' GPT2Config.__init__ defaults (tie_word_embeddings from PretrainedConfig). */
function parseGPT2(f: Fields): GPT2Config {
  f.reject("scale_attn_by_inverse_layer_idx", isFalse, "attention scores are scaled by 1/sqrt(head_dim) only");
  f.reject("add_cross_attention", isFalse, "decoder-only");
  f.reject("scale_attn_weights", (v) => v === true || v === null, "attention scores are always divided by sqrt(head_dim)");
  const rawAct = f.json.activation_function ?? "gelu_new";
  // "gelu_pytorch_tanh" is the same tanh approximation as "gelu_new", computed by a fused kernel.
  const act = rawAct === "gelu_pytorch_tanh" ? "gelu_new" : rawAct;
  if (act !== "gelu_new" && act !== "gelu") {
    f.fail("activation_function", `= ${JSON.stringify(rawAct)} is not supported (use "gelu_new" or "gelu")`);
  }
  const embd = f.int("n_embd", 768);
  const heads = f.int("n_head", 12);
  if (embd % heads !== 0) f.fail("n_head", `= ${heads} must divide n_embd = ${embd}`);
  return f.finish<GPT2Config>({
    model_type: "gpt2",
    architectures: f.architectures(Object.values(gpt2.classes), gpt2.classes.causalLm),
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
  });
}

export function gpt2ParamShapes(c: GPT2Config): ParamShapes {
  const d = c.n_embd;
  const shapes: ParamShapes = { "transformer.wte.weight": [c.vocab_size, d], "transformer.wpe.weight": [c.n_positions, d] };
  for (let i = 0; i < c.n_layer; i++) {
    const p = `transformer.h.${i}.`;
    shapes[p + "ln_1.weight"] = [d];
    shapes[p + "ln_1.bias"] = [d];
    shapes[p + "attn.c_attn.weight"] = [d, 3 * d];
    shapes[p + "attn.c_attn.bias"] = [3 * d];
    shapes[p + "attn.c_proj.weight"] = [d, d];
    shapes[p + "attn.c_proj.bias"] = [d];
    shapes[p + "ln_2.weight"] = [d];
    shapes[p + "ln_2.bias"] = [d];
    shapes[p + "mlp.c_fc.weight"] = [d, c.n_inner];
    shapes[p + "mlp.c_fc.bias"] = [c.n_inner];
    shapes[p + "mlp.c_proj.weight"] = [c.n_inner, d];
    shapes[p + "mlp.c_proj.bias"] = [d];
  }
  shapes["transformer.ln_f.weight"] = [d];
  shapes["transformer.ln_f.bias"] = [d];
  if (!c.tie_word_embeddings) shapes["lm_head.weight"] = [c.vocab_size, d];
  return shapes;
}

/** GPT-2's init: N(0, initializer_range), residual projections scaled by 1/sqrt(2·n_layer), LayerNorm at (1, 0). */
export function gpt2InitRule(c: GPT2Config) {
  const std = initStd(c);
  return (name: string): InitRule => {
    if (name.endsWith(".bias")) return { std: 0, constant: 0 };
    if (/ln_\w+\.weight$/.test(name)) return { std: 0, constant: 1 };
    if (name.endsWith("c_proj.weight")) return { std: std / Math.sqrt(2 * c.n_layer) };
    return { std };
  };
}

/** GPT-2's Conv1D weights, stored [in, out]; see ForwardBatch.transposedWeights. */
export function gpt2Conv1dWeights(c: GPT2Config): string[] {
  const names: string[] = [];
  for (let i = 0; i < c.n_layer; i++) {
    for (const m of ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]) names.push(`transformer.h.${i}.${m}.weight`);
  }
  return names;
}

export function gpt2Body(c: GPT2Config, params: Params, batch: ForwardBatch, past?: PastState): BodyOutput {
  const [b, t] = batch.inputIds.shape as [number, number];
  const d = c.n_embd;
  const nH = c.n_head;
  const hd = d / nH;
  const eps = c.layer_norm_epsilon;
  const act = c.activation_function === "gelu" ? geluErf : geluTanh;
  const cutLast = batch.lastPositionOnly ?? false;
  let x = lookup(params["transformer.wte.weight"]!.ref, batch.inputIds).add(lookup(params["transformer.wpe.weight"]!.ref, batch.positionIds)); // [B, T, D]
  const keys: Array[] = [];
  const values: Array[] = [];
  for (let i = 0; i < c.n_layer; i++) {
    const p = (name: string) => params[`transformer.h.${i}.${name}`]!.ref;
    const pass = { lora: batch.lora, conv1d: !batch.transposedWeights };
    const project = (input: Array, m: string) => projection(params, `transformer.h.${i}.${m}`, input, pass);
    const h = layerNorm(x.ref, p("ln_1.weight"), p("ln_1.bias"), eps);
    const qkv = project(h, "attn.c_attn"); // [B, T, 3D]
    // Slices, not np.split: jax-js materializes each output of a split (three copies per layer),
    // while a slice is a view its consumer reads in place.
    const [q, k0, v0] = [0, 1, 2].map((j) => qkv.ref.slice([], [], [j * d, (j + 1) * d])) as [Array, Array, Array];
    qkv.dispose();
    let k = k0.reshape([b, t, nH, hd]);
    let v = v0.reshape([b, t, nH, hd]);
    if (past) {
      k = writeCache(past.keys[i]!, k, past.slotOneHot.ref); // [B, S, nH, hd]
      v = writeCache(past.values[i]!, v, past.slotOneHot.ref);
    }
    keys.push(k.ref);
    values.push(v.ref);
    const [xs, qs, bias] = lastQueryOnly(cutLast && i === c.n_layer - 1, x, q.reshape([b, t, nH, hd]), batch.bias.ref);
    const attn = attention(qs, k, v, bias);
    x = xs.add(project(attn, "attn.c_proj"));
    const m = layerNorm(x.ref, p("ln_2.weight"), p("ln_2.bias"), eps);
    x = x.add(project(act(project(m, "mlp.c_fc")), "mlp.c_proj"));
  }
  const hidden = layerNorm(x, params["transformer.ln_f.weight"]!.ref, params["transformer.ln_f.bias"]!.ref, eps);
  return { hidden, present: { keys, values } };
}

function build(c: GPT2Config): Backbone {
  return {
    paramShapes: gpt2ParamShapes(c),
    initRule: gpt2InitRule(c),
    lmHeadName: c.tie_word_embeddings ? "transformer.wte.weight" : "lm_head.weight",
    body: (params, batch, past) => gpt2Body(c, params, batch, past),
    transposedForDecoding: gpt2Conv1dWeights(c),
    numLayers: c.n_layer,
    numKvHeads: c.n_head,
    headDim: c.n_embd / c.n_head,
    hiddenSize: c.n_embd,
    vocabSize: c.vocab_size,
    maxPositions: c.n_positions,
    trainFloatsPerOutput: 3.6, // measured: GELU's intermediates and LayerNorm's statistics: 3.5 at 4 × 128 and GPT-2 124M's shape at 1 × 512
  };
}

/**
 * Checkpoints saved from `GPT2Model` (the Hub's `gpt2` among them) lack the `transformer.` prefix;
 * `attn.bias` (the causal mask) and `attn.masked_bias` are buffers older transformers saved, not weights.
 */
function checkpointNames(tensors: TensorMap): TensorMap {
  const prefixed = [...tensors.keys()].some((k) => k.startsWith("transformer."));
  const named = [...tensors].map(([k, t]) => [prefixed || /^(lm_head|score)\./.test(k) ? k : `transformer.${k}`, t] as const);
  return new Map(named.filter(([k]) => !/^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/.test(k)));
}

export const gpt2: ModelFamily<GPT2Config> = {
  modelType: "gpt2",
  classes: { causalLm: "GPT2LMHeadModel", sequenceClassifier: "GPT2ForSequenceClassification", backbone: "GPT2Model" },
  parseConfig: parseGPT2,
  build,
  checkpointNames,
  defaultPadId: (c) => c.eos_token_id ?? 0, // GPT-2 has no pad token; <|endoftext|> serves
  defaultLoraTargets: ["c_attn"],
};
