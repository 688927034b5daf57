// Llama: RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention, tied or untied head.
// Parameter names are transformers' LlamaForCausalLM names.
import type { LlamaConfig } from "./config.ts";
import { llamaHeadDim } from "./config.ts";
import type { Array } from "../engine/runtime.ts";
import { applyRope, attention, lastQueryOnly, linear, lookup, rmsNorm, ropeTables, silu, writeCache } from "./layers.ts";
import type { BodyOutput, ForwardBatch, InitRule, Params, ParamShapes, PastState } from "./types.ts";

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

export function llamaInitRule(name: string): InitRule {
  return name.endsWith("norm.weight") ? { std: 0, constant: 1 } : { std: 0.02 };
}

export function llamaLmHeadName(c: LlamaConfig): string {
  return c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
}

export function llamaBody(c: LlamaConfig, params: Params, batch: ForwardBatch, past?: PastState): BodyOutput {
  const [b, t] = batch.inputIds.shape as [number, number];
  const hd = llamaHeadDim(c);
  const nH = c.num_attention_heads;
  const nKv = c.num_key_value_heads;
  const eps = c.rms_norm_eps;
  const cutLast = batch.lastPositionOnly ?? false;
  const { cos, sin } = ropeTables(batch.positionIds, hd, c.rope_theta); // [B, T, 1, hd]
  let x = lookup(params["model.embed_tokens.weight"]!.ref, batch.inputIds); // [B, T, D]
  const keys: Array[] = [];
  const values: Array[] = [];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = (name: string) => params[`model.layers.${i}.${name}`]!.ref;
    const h = rmsNorm(x.ref, p("input_layernorm.weight"), eps);
    const q = applyRope(linear(h.ref, p("self_attn.q_proj.weight")).reshape([b, t, nH, hd]), cos.ref, sin.ref);
    let k = applyRope(linear(h.ref, p("self_attn.k_proj.weight")).reshape([b, t, nKv, hd]), cos.ref, sin.ref);
    let v = linear(h, p("self_attn.v_proj.weight")).reshape([b, t, nKv, hd]);
    if (past) {
      k = writeCache(past.keys[i]!, k, past.slotOneHot.ref); // [B, S, nKV, hd]
      v = writeCache(past.values[i]!, v, past.slotOneHot.ref);
    }
    keys.push(k.ref);
    values.push(v.ref);
    const [xs, qs, bias] = lastQueryOnly(cutLast && i === c.num_hidden_layers - 1, x, q, batch.bias.ref);
    const attn = attention(qs, k, v, bias); // [B, T, nH·hd]
    x = xs.add(linear(attn, p("self_attn.o_proj.weight")));
    const m = rmsNorm(x.ref, p("post_attention_layernorm.weight"), eps);
    const gated = silu(linear(m.ref, p("mlp.gate_proj.weight"))).mul(linear(m, p("mlp.up_proj.weight")));
    x = x.add(linear(gated, p("mlp.down_proj.weight")));
  }
  const hidden = rmsNorm(x, params["model.norm.weight"]!.ref, eps);
  return { hidden, present: { keys, values } };
}
