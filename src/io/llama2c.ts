// llama2.c "version 0" checkpoints (karpathy/llama2.c, run.c memory_map_weights): a header of
// seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len), then float32
// weights, every matrix row-major [out, in] as in PyTorch's nn.Linear. vocab_size < 0 means the
// classifier is stored separately at the end instead of being shared with the embedding.
import { readFile } from "node:fs/promises";
import { CheckpointError } from "./errors.ts";
import type { HostTensor, TensorMap } from "./tensors.ts";

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number; // absolute value
  seqLen: number;
  sharedClassifier: boolean;
}

export const LLAMA2C_HEADER_BYTES = 7 * 4;

/** Decodes and sanity-checks the header; throws a message naming `source` if it makes no sense. */
export function parseLlama2cHeader(bytes: Uint8Array, source: string): Llama2cHeader {
  if (bytes.byteLength < LLAMA2C_HEADER_BYTES) {
    throw new CheckpointError(`${source}: ${bytes.byteLength} bytes is too short for a llama2.c checkpoint (header alone is ${LLAMA2C_HEADER_BYTES})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, LLAMA2C_HEADER_BYTES);
  if (view.getUint32(0, true) === 0x616b3432) {
    throw new CheckpointError(`${source}: this is a newer llama2.c export (magic "ak42", version ${view.getInt32(4, true)}); only the legacy version-0 .bin format is supported (export.py --version 0)`);
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = Array.from({ length: 7 }, (_, i) => view.getInt32(4 * i, true)) as [number, number, number, number, number, number, number];
  const fields = { dim, hidden_dim: hiddenDim, n_layers: nLayers, n_heads: nHeads, n_kv_heads: nKvHeads, seq_len: seqLen };
  for (const [name, v] of Object.entries(fields)) {
    if (v <= 0) throw new CheckpointError(`${source}: not a llama2.c checkpoint: header field ${name} = ${v} must be positive`);
  }
  if (vocab === 0) throw new CheckpointError(`${source}: not a llama2.c checkpoint: header field vocab_size = 0`);
  if (dim % nHeads !== 0) throw new CheckpointError(`${source}: not a llama2.c checkpoint: dim ${dim} is not divisible by n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) throw new CheckpointError(`${source}: not a llama2.c checkpoint: n_heads ${nHeads} is not divisible by n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) throw new CheckpointError(`${source}: not a llama2.c checkpoint: head size ${dim / nHeads} must be even for RoPE`);
  return { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), seqLen, sharedClassifier: vocab > 0 };
}

/** The tensors of the file in storage order, with their llama2.c shapes (per-layer tensors stacked on axis 0). */
function layout(h: Llama2cHeader): [string, number[]][] {
  const { dim: D, hiddenDim: H, nLayers: L, vocabSize: V, seqLen } = h;
  const headDim = D / h.nHeads;
  const kvDim = h.nKvHeads * headDim;
  const entries: [string, number[]][] = [
    ["token_embedding_table", [V, D]],
    ["rms_att_weight", [L, D]],
    ["wq", [L, D, D]],
    ["wk", [L, kvDim, D]],
    ["wv", [L, kvDim, D]],
    ["wo", [L, D, D]],
    ["rms_ffn_weight", [L, D]],
    ["w1", [L, H, D]],
    ["w2", [L, D, H]],
    ["w3", [L, H, D]],
    ["rms_final_weight", [D]],
    ["freq_cis_real", [seqLen, headDim / 2]],
    ["freq_cis_imag", [seqLen, headDim / 2]],
  ];
  if (!h.sharedClassifier) entries.push(["wcls", [V, D]]);
  return entries;
}

export function llama2cFileBytes(h: Llama2cHeader): number {
  return LLAMA2C_HEADER_BYTES + 4 * layout(h).reduce((sum, [, shape]) => sum + shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * llama2.c rotates interleaved pairs (0,1), (2,3), ... of each head; Hugging Face Llama rotates
 * halves (i, i + headDim/2). Reordering the output rows of q_proj/k_proj per head, even rows
 * first then odd ones, makes the two agree (it is the `permute` in transformers'
 * convert_llama_weights_to_hf.py: view [nHeads, headDim/2, 2, in], swap axes 1 and 2).
 * `to: "interleaved"` is the inverse, llama.cpp's layout (convert_hf_to_gguf.py's `permute`).
 */
export function permuteRotaryRows(w: HostTensor, nHeads: number, to: "halves" | "interleaved" = "halves"): HostTensor {
  const [rows, cols] = w.shape as [number, number];
  const headDim = rows / nHeads;
  const half = headDim / 2;
  const out = new Float32Array(w.data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let parity = 0; parity < 2; parity++) {
        const interleaved = h * headDim + 2 * i + parity;
        const halves = h * headDim + parity * half + i;
        const [from, into] = to === "halves" ? [interleaved, halves] : [halves, interleaved];
        out.set(w.data.subarray(from * cols, (from + 1) * cols), into * cols);
      }
    }
  }
  return { shape: [rows, cols], data: out };
}

/** Checks the stored RoPE tables against rope_theta = 10000, the only value llama2.c uses, for the first positions. */
function checkRopeTables(real: Float32Array, imag: Float32Array, headDim: number, seqLen: number, source: string): void {
  const half = headDim / 2;
  for (let pos = 0; pos < Math.min(seqLen, 4); pos++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * 10000 ** (-(2 * i) / headDim);
      const [c, s] = [real[pos * half + i]!, imag[pos * half + i]!];
      if (Math.abs(c - Math.cos(angle)) > 1e-4 || Math.abs(s - Math.sin(angle)) > 1e-4) {
        throw new CheckpointError(`${source}: freq_cis tables do not match rope_theta 10000 (position ${pos}, pair ${i}: cos ${c}, sin ${s}); corrupt file or a non-standard export`);
      }
    }
  }
}

/** The config.json of a Hugging Face Llama with a llama2.c checkpoint's weights (parsed by models/config.ts). */
export interface Llama2cConfigJson {
  model_type: "llama";
  architectures: ["LlamaForCausalLM"];
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: boolean;
  hidden_act: "silu";
  bos_token_id: number;
  eos_token_id: number;
  torch_dtype: "float32";
}

/** Decodes a whole llama2.c checkpoint into Hugging Face Llama names and conventions. */
export function decodeLlama2c(bytes: Uint8Array, source: string): { config: Llama2cConfigJson; tensors: TensorMap } {
  const h = parseLlama2cHeader(bytes, source);
  const expected = llama2cFileBytes(h);
  if (bytes.byteLength !== expected) {
    const other = llama2cFileBytes({ ...h, sharedClassifier: !h.sharedClassifier });
    const hint = h.sharedClassifier
      ? `the header's positive vocab_size means the classifier is shared with the embedding${bytes.byteLength === other ? "; the size fits an unshared classifier (wcls), so the header's vocab_size sign is likely wrong" : ""}`
      : `the header's negative vocab_size means a separate classifier (wcls) is stored at the end${bytes.byteLength === other ? "; the size fits a shared classifier, so the header's vocab_size sign is likely wrong" : ""}`;
    throw new CheckpointError(`${source}: file size does not match its header: expected ${expected} bytes, got ${bytes.byteLength} (${hint})`);
  }

  // Copy once into an aligned buffer (new Uint8Array(view) copies; a Node Buffer's slice() would not),
  // and every tensor below is copied again out of it, so nothing aliases the file bytes.
  const floats = new Float32Array(new Uint8Array(bytes.subarray(LLAMA2C_HEADER_BYTES)).buffer);
  const raw = new Map<string, Float32Array>();
  let at = 0;
  for (const [name, shape] of layout(h)) {
    const n = shape.reduce((a, b) => a * b, 1);
    raw.set(name, floats.subarray(at, at + n));
    at += n;
  }
  const get = (name: string) => raw.get(name)!;
  const headDim = h.dim / h.nHeads;
  checkRopeTables(get("freq_cis_real"), get("freq_cis_imag"), headDim, h.seqLen, source);

  const tensors: TensorMap = new Map();
  const put = (name: string, shape: number[], data: Float32Array) => tensors.set(name, { shape, data: data.slice() });
  // Slice layer `l` out of a stacked [L, ...shape] array.
  const layer = (name: string, l: number, shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { shape, data: get(name).subarray(l * n, (l + 1) * n) };
  };

  const { dim: D, hiddenDim: H, vocabSize: V } = h;
  const kvDim = h.nKvHeads * headDim;
  put("model.embed_tokens.weight", [V, D], get("token_embedding_table"));
  for (let l = 0; l < h.nLayers; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [D], layer("rms_att_weight", l, [D]).data);
    tensors.set(`${p}.self_attn.q_proj.weight`, permuteRotaryRows(layer("wq", l, [D, D]), h.nHeads));
    tensors.set(`${p}.self_attn.k_proj.weight`, permuteRotaryRows(layer("wk", l, [kvDim, D]), h.nKvHeads));
    put(`${p}.self_attn.v_proj.weight`, [kvDim, D], layer("wv", l, [kvDim, D]).data);
    put(`${p}.self_attn.o_proj.weight`, [D, D], layer("wo", l, [D, D]).data);
    put(`${p}.post_attention_layernorm.weight`, [D], layer("rms_ffn_weight", l, [D]).data);
    put(`${p}.mlp.gate_proj.weight`, [H, D], layer("w1", l, [H, D]).data);
    put(`${p}.mlp.down_proj.weight`, [D, H], layer("w2", l, [D, H]).data);
    put(`${p}.mlp.up_proj.weight`, [H, D], layer("w3", l, [H, D]).data);
  }
  put("model.norm.weight", [D], get("rms_final_weight"));
  if (!h.sharedClassifier) put("lm_head.weight", [V, D], get("wcls"));

  const config: Llama2cConfigJson = {
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    vocab_size: V,
    hidden_size: D,
    intermediate_size: H,
    num_hidden_layers: h.nLayers,
    num_attention_heads: h.nHeads,
    num_key_value_heads: h.nKvHeads,
    head_dim: headDim,
    max_position_embeddings: h.seqLen,
    rms_norm_eps: 1e-5, // hard-coded in run.c's rmsnorm
    rope_theta: 10000,
    tie_word_embeddings: h.sharedClassifier,
    hidden_act: "silu",
    bos_token_id: 1, // llama2.c's sentencepiece tokenizers: 1 = <s>, 2 = </s>
    eos_token_id: 2,
    torch_dtype: "float32",
  };
  return { config, tensors };
}

export async function readLlama2c(path: string): Promise<{ config: Llama2cConfigJson; tensors: TensorMap }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new CheckpointError(`llama2.c checkpoint not found: ${path}`);
    throw err;
  }
  return decodeLlama2c(bytes, path);
}
