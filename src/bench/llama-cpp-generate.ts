// `rlhf bench --rollout_engine llama.cpp`: the benchmark's generation workload (the same random
// weights, the same prompt ids, greedy, the same number of new tokens) on llama.cpp instead of
// jax-js. The weights are exported as an f32 GGUF once, at the workload's first (untimed) run,
// as the rollout engine exports a policy; the timed runs are generation alone, with llama.cpp's
// default F16 KV cache, as rollouts use it.
import type { ModelConfig } from "../models/config.ts";
import { writeTempGguf, type GgufFileType } from "../models/gguf-export.ts";
import type { Params } from "../models/types.ts";
import { LlamaCppGenerator } from "../generation/llama-cpp.ts";
import { gpt2TokenizerJson, HfTokenizer } from "../tokenizers/hf.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

const END_OF_TEXT = "<|endoftext|>";

/**
 * The GGUF file needs a vocabulary, and a benchmark model with random weights has none: a byte-level
 * BPE of GPT-2's 256 byte symbols and <|endoftext|>, no merges, which the export pads with unused
 * tokens to the model's rows. Only ids are timed, so what they spell does not matter.
 */
export function byteLevelBenchTokenizer(): Tokenizer {
  const vocab: Record<string, number> = {};
  byteSymbols().forEach((symbol, byte) => (vocab[symbol] = byte));
  vocab[END_OF_TEXT] = 256;
  return new HfTokenizer(gpt2TokenizerJson(vocab, []), { bos_token: END_OF_TEXT, eos_token: END_OF_TEXT, unk_token: END_OF_TEXT }, "GPT2Tokenizer");
}

/** Byte-level BPE's printable stand-in for each byte: printable Latin-1 bytes stand for themselves, the others for U+0100 onwards in byte order. */
function byteSymbols(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 0x100;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : next++));
}

export interface LlamaCppGenerateWorkload {
  run(): Promise<void>;
  dispose(): Promise<void>;
}

/** Greedy generation of `newTokens` after each of `prompts` on llama.cpp, from `params` exported once as `type`. */
export function llamaCppGenerateWorkload(config: ModelConfig, params: () => Params, prompts: number[][], newTokens: number, threads: number, type: GgufFileType = "f32"): LlamaCppGenerateWorkload {
  let file: Awaited<ReturnType<typeof writeTempGguf>> | undefined;
  let generator: LlamaCppGenerator | undefined;
  const open = async () => {
    file = await writeTempGguf(config, params(), byteLevelBenchTokenizer(), { type, name: "bench", source: "benchmark model" });
    const contextSize = Math.max(...prompts.map((p) => p.length)) + newTokens;
    return LlamaCppGenerator.open(file.path, { contextSize, threads, sequences: prompts.length });
  };
  return {
    run: async () => {
      generator ??= await open();
      const out = await generator.greedyBatch(prompts, newTokens);
      if (out.some((g) => g.completionIds.length !== newTokens)) throw new Error("benchmark generation on llama.cpp stopped early");
    },
    dispose: async () => {
      await generator?.dispose();
      await file?.remove();
    },
  };
}
