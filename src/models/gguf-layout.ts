// How each architecture is laid out in llama.cpp's GGUF files (llama.cpp's llm_arch tensor names and
// hparam keys, as convert_hf_to_gguf.py writes them): the general.architecture name, the hparams,
// the name of every module, and the two places where llama.cpp stores a weight differently from
// transformers:
// - Llama's q_proj/k_proj rows: llama.cpp rotates interleaved pairs (rope type "norm"), transformers
//   rotates halves, so rows go back to interleaved per head (convert_hf_to_gguf.py's permute; the
//   inverse of what llama2.c files go through on the way in). Qwen2 rotates halves in llama.cpp
//   too (rope type "neox") and is stored as it is.
// - GPT-2's Conv1D weights are [in, out]; llama.cpp's are nn.Linear's [out, in].
import { CheckpointError } from "../io/errors.ts";
import { gguf, type GgufValue } from "../io/gguf.ts";
import type { ModelConfig } from "./config.ts";
import type { GPT2Config } from "./gpt2.ts";
import { llamaHeadDim, type LlamaConfig } from "./llama.ts";
import type { Qwen2Config } from "./qwen2.ts";

export interface GgufLayout<C extends ModelConfig> {
  /** general.architecture, also the prefix of the hparam keys. */
  arch: string;
  /** The hparams (`<arch>.context_length`, …) for a config, refusing what llama.cpp's graph would compute differently. */
  hparams(config: C, source: string): [string, GgufValue][];
  /** transformers module → llama.cpp tensor name stem, `[pattern, replacement]` tried in order. */
  modules: [RegExp, string][];
  /** For a module whose output rows llama.cpp orders differently: the number of rotary heads its rows hold. */
  rotaryHeads?(config: C, module: string): number | undefined;
  /** Modules whose weight transformers stores [in, out]. */
  transposed?(module: string): boolean;
}

const LLAMA_MODULES: [RegExp, string][] = [
  [/^model\.embed_tokens$/, "token_embd"],
  [/^model\.layers\.(\d+)\.input_layernorm$/, "blk.$1.attn_norm"],
  [/^model\.layers\.(\d+)\.self_attn\.([qkv])_proj$/, "blk.$1.attn_$2"],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj$/, "blk.$1.attn_output"],
  [/^model\.layers\.(\d+)\.post_attention_layernorm$/, "blk.$1.ffn_norm"],
  [/^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj$/, "blk.$1.ffn_$2"],
  [/^model\.norm$/, "output_norm"],
  [/^lm_head$/, "output"],
];

/** The hparams Llama and Qwen2 share. */
function decoderHparams(arch: string, c: LlamaConfig | Qwen2Config, headDim: number): [string, GgufValue][] {
  return [
    [`${arch}.vocab_size`, gguf.u32(c.vocab_size)],
    [`${arch}.context_length`, gguf.u32(c.max_position_embeddings)],
    [`${arch}.embedding_length`, gguf.u32(c.hidden_size)],
    [`${arch}.block_count`, gguf.u32(c.num_hidden_layers)],
    [`${arch}.feed_forward_length`, gguf.u32(c.intermediate_size)],
    [`${arch}.rope.dimension_count`, gguf.u32(headDim)],
    [`${arch}.attention.head_count`, gguf.u32(c.num_attention_heads)],
    [`${arch}.attention.head_count_kv`, gguf.u32(c.num_key_value_heads)],
    [`${arch}.attention.key_length`, gguf.u32(headDim)],
    [`${arch}.attention.value_length`, gguf.u32(headDim)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.f32(c.rms_norm_eps)],
    [`${arch}.rope.freq_base`, gguf.f32(c.rope_theta)],
  ];
}

const llama: GgufLayout<LlamaConfig> = {
  arch: "llama",
  hparams(c, source) {
    // Llama 3's rescaled frequencies travel as a rope_freqs tensor in llama.cpp; not written here.
    if (c.rope_scaling) throw new CheckpointError(`${source}: rope_scaling (Llama 3's) is not exported to GGUF here`);
    return decoderHparams("llama", c, llamaHeadDim(c));
  },
  modules: LLAMA_MODULES,
  rotaryHeads(c, module) {
    if (module.endsWith(".self_attn.q_proj")) return c.num_attention_heads;
    if (module.endsWith(".self_attn.k_proj")) return c.num_key_value_heads;
    return undefined;
  },
};

const qwen2: GgufLayout<Qwen2Config> = {
  arch: "qwen2",
  hparams: (c) => decoderHparams("qwen2", c, c.hidden_size / c.num_attention_heads),
  modules: LLAMA_MODULES,
};

const CONV1D = /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)$/;

const gpt2: GgufLayout<GPT2Config> = {
  arch: "gpt2",
  hparams(c, source) {
    // llama.cpp's GPT-2 graph applies the tanh approximation (ggml_gelu).
    if (c.activation_function !== "gelu_new") throw new CheckpointError(`${source}: activation_function ${JSON.stringify(c.activation_function)}: llama.cpp's GPT-2 computes "gelu_new" (tanh) only`);
    return [
      ["gpt2.vocab_size", gguf.u32(c.vocab_size)],
      ["gpt2.context_length", gguf.u32(c.n_positions)],
      ["gpt2.embedding_length", gguf.u32(c.n_embd)],
      ["gpt2.block_count", gguf.u32(c.n_layer)],
      ["gpt2.feed_forward_length", gguf.u32(c.n_inner)],
      ["gpt2.attention.head_count", gguf.u32(c.n_head)],
      ["gpt2.attention.layer_norm_epsilon", gguf.f32(c.layer_norm_epsilon)],
    ];
  },
  modules: [
    [/^transformer\.wte$/, "token_embd"],
    [/^transformer\.wpe$/, "position_embd"],
    [/^transformer\.h\.(\d+)\.ln_1$/, "blk.$1.attn_norm"],
    [/^transformer\.h\.(\d+)\.attn\.c_attn$/, "blk.$1.attn_qkv"],
    [/^transformer\.h\.(\d+)\.attn\.c_proj$/, "blk.$1.attn_output"],
    [/^transformer\.h\.(\d+)\.ln_2$/, "blk.$1.ffn_norm"],
    [/^transformer\.h\.(\d+)\.mlp\.c_fc$/, "blk.$1.ffn_up"],
    [/^transformer\.h\.(\d+)\.mlp\.c_proj$/, "blk.$1.ffn_down"],
    [/^transformer\.ln_f$/, "output_norm"],
    [/^lm_head$/, "output"],
  ],
  transposed: (module) => CONV1D.test(module),
};

/** Every registered architecture must have a layout (a new model_type fails to compile until it does). */
const LAYOUTS: { [T in ModelConfig["model_type"]]: GgufLayout<Extract<ModelConfig, { model_type: T }>> } = { llama, qwen2, gpt2 };

export function ggufLayoutOf(config: ModelConfig): GgufLayout<ModelConfig> {
  return LAYOUTS[config.model_type] as GgufLayout<ModelConfig>;
}

/** llama.cpp's name stem for a transformers module, or a CheckpointError naming it. */
export function ggufModuleName(layout: GgufLayout<ModelConfig>, module: string, source: string): string {
  for (const [pattern, replacement] of layout.modules) if (pattern.test(module)) return module.replace(pattern, replacement);
  throw new CheckpointError(`${source}: ${module} has no tensor in llama.cpp's ${layout.arch} (a sequence classifier's score head cannot be exported to GGUF)`);
}
