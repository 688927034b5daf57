// Generation on llama.cpp through node-llama-cpp, from a GGUF file (`rlhf convert --to gguf`), with
// an optional GGUF LoRA adapter applied at run time. Token ids in and out, so prompts are exactly the
// ids this project's tokenizer made; its prebuilt CPU build loads offline (build: "never").
// A model loaded once (LlamaCppModel) serves a generator per adapter: the PPO loop swaps a freshly
// written adapter in each step without reloading the base.
import { resolve } from "node:path";
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";

export interface LlamaCppOptions {
  /** A GGUF LoRA adapter to apply (scale 1). */
  lora?: string | undefined;
  /** Context window in tokens (prompt + new tokens of one sequence). */
  contextSize: number;
  /** CPU threads for evaluation. */
  threads: number;
  /** Sequences generated at once (greedyBatch), sharing each decode batch; 1 by default. */
  sequences?: number;
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

interface GreedyOptions {
  eosTokenIds?: number[];
  /** Also return each token's log-prob (the full logits of every step: slower). */
  logprobs?: boolean;
}

export interface SampleSettings {
  temperature: number;
  /** 0: no top-k cut. */
  topK: number;
  topP: number;
  seed: number;
  maxNewTokens: number;
  eosTokenIds: number[];
}

let llamaInstance: Promise<Llama> | undefined;

/** The one llama.cpp runtime of the process (node-llama-cpp's prebuilt CPU build, quiet). */
function llamaRuntime(): Promise<Llama> {
  llamaInstance ??= import("node-llama-cpp").then(({ getLlama, LlamaLogLevel }) => getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error }));
  return llamaInstance;
}

/** A GGUF model loaded into llama.cpp, opened as generators (contexts), each with its own adapter or none. */
export class LlamaCppModel {
  private constructor(readonly model: LlamaModel) {}

  static async load(modelPath: string): Promise<LlamaCppModel> {
    const llama = await llamaRuntime();
    return new LlamaCppModel(await llama.loadModel({ modelPath, gpuLayers: 0 }));
  }

  /** A context on this model; disposing it also unloads its adapter (the model stays). */
  generator(options: LlamaCppOptions): Promise<LlamaCppGenerator> {
    return LlamaCppGenerator.onModel(this.model, options, false);
  }

  /** Adapters the model holds (node-llama-cpp keeps each until unloaded: the leak test counts them). */
  get loadedAdapters(): number {
    return loraCache(this.model).size;
  }

  dispose(): Promise<void> {
    return this.model.dispose();
  }
}

/**
 * node-llama-cpp 3.22 caches a model's adapters by path and frees them only with the model, so a
 * run that loads a new adapter each step would hold every one of them. Its cache is internal
 * (LlamaModel._loraAdapters, path → AddonModelLora whose dispose() calls llama_adapter_lora_free);
 * this is the one place that reaches into it.
 */
function loraCache(model: LlamaModel): Map<string, { dispose(): Promise<void> }> {
  const cache = (model as unknown as { _loraAdapters?: Map<string, { dispose(): Promise<void> }> })._loraAdapters;
  if (!(cache instanceof Map)) throw new Error("node-llama-cpp: LlamaModel._loraAdapters is gone (a version other than 3.22?); adapters could not be unloaded");
  return cache;
}

async function unloadLora(model: LlamaModel, path: string): Promise<void> {
  const cache = loraCache(model);
  const key = resolve(process.cwd(), path);
  const lora = cache.get(key);
  cache.delete(key);
  await lora?.dispose();
}

export class LlamaCppGenerator {
  private constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    /** The context's sequences, their history cleared before each generation. */
    private readonly sequences: LlamaContextSequence[],
    private readonly lora: string | undefined,
    /** Whether dispose() also frees the model (open()) or leaves it to its LlamaCppModel. */
    private readonly ownsModel: boolean,
  ) {}

  /** Loads `modelPath` for this generator alone. */
  static async open(modelPath: string, options: LlamaCppOptions): Promise<LlamaCppGenerator> {
    const llama = await llamaRuntime();
    return LlamaCppGenerator.onModel(await llama.loadModel({ modelPath, gpuLayers: 0 }), options, true);
  }

  static async onModel(model: LlamaModel, options: LlamaCppOptions, ownsModel: boolean): Promise<LlamaCppGenerator> {
    const context = await model.createContext({
      contextSize: options.contextSize,
      batchSize: options.contextSize,
      threads: options.threads,
      sequences: options.sequences ?? 1,
      // Flash attention on the CPU rounds queries to half precision; an F32 cache asks for float32 throughout.
      ...(options.kvCacheType === "F32" ? { flashAttention: false } : {}),
      experimentalKvCacheKeyType: options.kvCacheType ?? "F16",
      experimentalKvCacheValueType: options.kvCacheType ?? "F16",
      ...(options.lora ? { lora: options.lora } : {}),
    });
    const sequences = Array.from({ length: options.sequences ?? 1 }, () => context.getSequence());
    return new LlamaCppGenerator(model, context, sequences, options.lora, ownsModel);
  }

  /** Greedy decoding of `maxNewTokens` after `promptIds` (BOS included if wanted), stopping at `eosTokenIds`. */
  greedy(promptIds: number[], maxNewTokens: number, options: GreedyOptions = {}): Promise<LlamaCppGeneration> {
    return this.#greedyOn(this.sequences[0]!, promptIds, maxNewTokens, options);
  }

  /** greedy() for several prompts at once, one per sequence (llama.cpp decodes them in shared batches). */
  async greedyBatch(prompts: number[][], maxNewTokens: number, options: GreedyOptions = {}): Promise<LlamaCppGeneration[]> {
    const sequences = this.#sequencesFor(prompts);
    if (options.logprobs) return Promise.all(prompts.map((p, i) => this.#greedyOn(sequences[i]!, p, maxNewTokens, options)));
    const outs = await this.#lockstep(prompts, maxNewTokens, options.eosTokenIds ?? [], () => ({ temperature: 0 }));
    return outs.map(({ completionIds }) => ({ completionIds, logprobs: [] }));
  }

  async #greedyOn(sequence: LlamaContextSequence, promptIds: number[], maxNewTokens: number, options: GreedyOptions): Promise<LlamaCppGeneration> {
    const eos = new Set(options.eosTokenIds ?? []);
    await sequence.clearHistory();
    const out: LlamaCppGeneration = { completionIds: [], logprobs: [] };
    if (!options.logprobs) {
      // EOS ends a generation only when the caller names it, as in the built-in generator.
      for await (const token of sequence.evaluate(promptIds as Token[], { temperature: 0, yieldEogToken: true })) {
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

  /** The context's sequences for `prompts`, one each. */
  #sequencesFor(prompts: number[][]): LlamaContextSequence[] {
    if (prompts.length > this.sequences.length) throw new Error(`llama.cpp: ${prompts.length} prompts for a context of ${this.sequences.length} sequences`);
    return this.sequences.slice(0, prompts.length);
  }

  /**
   * Samples up to `maxNewTokens` after each prompt (one per sequence, decoded in shared batches) with
   * llama.cpp's sampler: temperature, top-k (0 = off), top-p, seeded per prompt. `logprobs` are the
   * log of llama.cpp's probability of each sampled token after those settings (TRL's vLLM path logs
   * the same kind of number as the sampler's log-prob).
   */
  sampleBatch(prompts: number[][], options: SampleSettings): Promise<(LlamaCppGeneration & { stoppedAtEos: boolean })[]> {
    const sampling = (i: number) => ({ temperature: options.temperature, topK: options.topK, topP: options.topP, seed: options.seed + i });
    return this.#lockstep(prompts, options.maxNewTokens, options.eosTokenIds, sampling);
  }

  /**
   * Up to `maxNewTokens` after each prompt, one per sequence, with the sampler settings of each;
   * `logprobs` are the log of llama.cpp's probability of each token drawn.
   * Lockstep: every live sequence asks for its next token before any asks for another, so each
   * llama.cpp decode batch holds every live sequence, in the same order from run to run. Left to
   * race, a sequence that has its token first asks for the next decode while the others are still
   * sampling: batches split (8 greedy sequences at SmolLM2-135M's shape took 9.2 s racing, 4.8 s in lockstep) and
   * their make-up follows the threads' timing, and with it the logits' last bits (and the log-probs
   * the trainer's importance weights are made of).
   */
  async #lockstep(
    prompts: number[][],
    maxNewTokens: number,
    eosTokenIds: number[],
    sampling: (i: number) => { temperature: number; topK?: number; topP?: number; seed?: number },
  ): Promise<(LlamaCppGeneration & { stoppedAtEos: boolean })[]> {
    const sequences = this.#sequencesFor(prompts);
    const outs = prompts.map(() => ({ completionIds: [] as number[], logprobs: [] as number[], stoppedAtEos: false }));
    if (maxNewTokens <= 0) return outs;
    await Promise.all(prompts.map((_, i) => sequences[i]!.clearHistory()));
    const eos = new Set(eosTokenIds);
    const streams = prompts.map((prompt, i) => sequences[i]!.evaluateWithMetadata(prompt as Token[], { confidence: true }, { ...sampling(i), yieldEogToken: true })[Symbol.asyncIterator]());
    let live = prompts.map((_, i) => i);
    while (live.length > 0) {
      const next = await Promise.all(live.map((i) => streams[i]!.next()));
      const still: number[] = [];
      for (const [k, i] of live.entries()) {
        const step = next[k]!;
        const out = outs[i]!;
        if (step.done) continue;
        if (eos.has(step.value.token)) out.stoppedAtEos = true;
        else {
          out.completionIds.push(step.value.token);
          out.logprobs.push(Math.log(step.value.confidence));
          if (out.completionIds.length < maxNewTokens) still.push(i);
        }
      }
      for (const i of live) if (!still.includes(i)) await streams[i]!.return?.(undefined);
      live = still;
    }
    return outs;
  }

  async dispose(): Promise<void> {
    for (const s of this.sequences) s.dispose();
    await this.context.dispose();
    if (this.ownsModel) return this.model.dispose();
    if (this.lora) await unloadLora(this.model, this.lora);
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
