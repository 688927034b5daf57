// Generation on llama.cpp through node-llama-cpp, from a GGUF file (`rlhf convert --to gguf`), with
// an optional GGUF LoRA adapter applied at run time. Token ids in and out, so prompts are exactly the
// ids this project's tokenizer made; its prebuilt CPU build loads offline (build: "never").
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";

export interface LlamaCppOptions {
  /** A GGUF LoRA adapter to apply (scale 1). */
  lora?: string | undefined;
  /** Context window in tokens (prompt + new tokens of one sequence). */
  contextSize: number;
  /** CPU threads for evaluation. */
  threads: number;
  /**
   * The KV cache's type: llama.cpp's default F16 (half the memory), or F32 to compute as this
   * project's generator does (the comparisons of log-probs use it).
   */
  kvCacheType?: "F16" | "F32";
}

export interface LlamaCppGeneration {
  completionIds: number[];
  /** log p(token) under llama.cpp's logits (log-softmax over the whole vocabulary), when asked for. */
  logprobs: number[];
}

let llamaInstance: Promise<Llama> | undefined;

/** The one llama.cpp runtime of the process (node-llama-cpp's prebuilt CPU build, quiet). */
function llamaRuntime(): Promise<Llama> {
  llamaInstance ??= import("node-llama-cpp").then(({ getLlama, LlamaLogLevel }) => getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error }));
  return llamaInstance;
}

export class LlamaCppGenerator {
  private constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    /** One sequence, its history cleared before each generation. */
    private readonly sequence: LlamaContextSequence,
  ) {}

  static async open(modelPath: string, options: LlamaCppOptions): Promise<LlamaCppGenerator> {
    const llama = await llamaRuntime();
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
    const context = await model.createContext({
      contextSize: options.contextSize,
      batchSize: options.contextSize,
      threads: options.threads,
      // Flash attention on the CPU rounds queries to half precision; an F32 cache asks for float32 throughout.
      ...(options.kvCacheType === "F32" ? { flashAttention: false } : {}),
      experimentalKvCacheKeyType: options.kvCacheType ?? "F16",
      experimentalKvCacheValueType: options.kvCacheType ?? "F16",
      ...(options.lora ? { lora: options.lora } : {}),
    });
    return new LlamaCppGenerator(model, context, context.getSequence());
  }

  /** Greedy decoding of `maxNewTokens` after `promptIds` (BOS included if wanted), stopping at `eosTokenIds`. */
  async greedy(promptIds: number[], maxNewTokens: number, options: { eosTokenIds?: number[]; logprobs?: boolean } = {}): Promise<LlamaCppGeneration> {
    const eos = new Set(options.eosTokenIds ?? []);
    const sequence = this.sequence;
    await sequence.clearHistory();
    {
      const out: LlamaCppGeneration = { completionIds: [], logprobs: [] };
      if (!options.logprobs) {
        for await (const token of sequence.evaluate(promptIds as Token[], { temperature: 0 })) {
          if (eos.has(token)) break;
          out.completionIds.push(token);
          if (out.completionIds.length >= maxNewTokens) break;
        }
        return out;
      }
      // One evaluation per token, asking for the full logits of the next position.
      let input: number[] = promptIds;
      for (let step = 0; step < maxNewTokens; step++) {
        const items = input.map((t, i) => (i === input.length - 1 ? ([t, { generateNext: { token: true, logits: true } }] as const) : t)) as Parameters<typeof sequence.controlledEvaluate>[0];
        const results = await sequence.controlledEvaluate(items);
        const next = results[input.length - 1]!.next;
        const token = next.token!;
        if (eos.has(token)) break;
        out.completionIds.push(token);
        out.logprobs.push(logSoftmaxAt(next.logits!, token));
        input = [token];
      }
      return out;
    }
  }

  async dispose(): Promise<void> {
    this.sequence.dispose();
    await this.context.dispose();
    await this.model.dispose();
  }
}

/** log-softmax of `logits` at `token`, in float64. */
function logSoftmaxAt(logits: Map<Token, number>, token: number): number {
  let max = -Infinity;
  for (const v of logits.values()) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits.values()) sum += Math.exp(v - max);
  return logits.get(token as Token)! - max - Math.log(sum);
}
