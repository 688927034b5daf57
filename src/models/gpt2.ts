// GPT-2: learned positions, pre-LayerNorm blocks, GELU MLP, biases everywhere, Conv1D weight layout
// ([in, out]). Parameter names are transformers' GPT2LMHeadModel names.
import type { GPT2Config } from "./config.ts";
import { np, type Array } from "../engine/runtime.ts";
import { attention, conv1d, linear, lookup, geluErf, geluTanh, lastQueryOnly, layerNorm, writeCache } from "./layers.ts";
import type { BodyOutput, ForwardBatch, InitRule, Params, ParamShapes, PastState } from "./types.ts";

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

/** GPT-2's init: N(0, 0.02), residual projections scaled by 1/sqrt(2·n_layer), LayerNorm at (1, 0). */
export function gpt2InitRule(c: GPT2Config) {
  return (name: string): InitRule => {
    if (name.endsWith(".bias")) return { std: 0, constant: 0 };
    if (/ln_\w+\.weight$/.test(name)) return { std: 0, constant: 1 };
    if (name.endsWith("c_proj.weight")) return { std: 0.02 / Math.sqrt(2 * c.n_layer) };
    return { std: 0.02 };
  };
}

export function gpt2LmHeadName(c: GPT2Config): string {
  return c.tie_word_embeddings ? "transformer.wte.weight" : "lm_head.weight";
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
    const project = batch.transposedWeights
      ? (input: Array, m: string) => linear(input, p(`${m}.weight`), p(`${m}.bias`))
      : (input: Array, m: string) => conv1d(input, p(`${m}.weight`), p(`${m}.bias`));
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
