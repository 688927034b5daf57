// DecodeRows on llama.cpp (`rlhf serve --rollout_engine llama.cpp`): one context with a sequence per
// row, each sequence its own KV cache in llama.cpp's memory (outside jax-js's 4 GiB). Rows name
// sequences: moving a row (arrange) is a change of that map, never a copy, and a freed row's
// sequence is cleared when it is next taken. Every read and step issues its evaluations together,
// so node-llama-cpp decodes the rows in one batch, and asks for the full logits of the next
// position, which the scheduler samples from as it samples jax-js's; a row whose choice reads only
// its token (no log-probs) has llama.cpp draw it instead (DecodeRows' EngineDraw).
// The model reaches llama.cpp as the rollout engine's does: exported once as an f32 GGUF into a
// private temp directory, removed by dispose().
import type { LlamaContext, LlamaContextSequence, Token } from "node-llama-cpp";
import type { ModelConfig } from "../models/config.ts";
import { writeTempGguf } from "../models/gguf-export.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { DecodeRows, EngineDraw, PromptRows } from "./decode-rows.ts";
import { LlamaCppModel } from "./llama-cpp.ts";

export interface LlamaCppRowsOptions {
  /** Rows at most: the context's sequences. */
  maxRows: number;
  /** Tokens per row (prompt + completion). */
  contextLength: number;
  /** CPU threads for evaluation. */
  threads: number;
}

type Evaluation = Parameters<LlamaContextSequence["controlledEvaluate"]>[0];

export class LlamaCppRows implements DecodeRows {
  /** Rows that need only their token are drawn by llama.cpp's sampler (no logits handed over). */
  readonly samplesDraws = true;
  /** Row → index into #sequences, -1 for an empty row. */
  #rowSequence: number[] = [];
  /** Sequences no row holds, and which of them still hold an old sequence's tokens. */
  readonly #idle: number[];
  readonly #stale = new Set<number>();

  private constructor(
    private readonly model: LlamaCppModel,
    private readonly context: LlamaContext,
    private readonly sequences: LlamaContextSequence[],
    readonly vocabSize: number,
    readonly contextLength: number,
    /** Deletes the exported GGUF, with the rows. */
    private readonly removeGguf: () => Promise<void>,
  ) {
    this.#idle = sequences.map((_, i) => i);
  }

  /** Exports `params` (a model's own weights, an adapter merged) with its tokenizer and opens them in llama.cpp. */
  static async fromParams(config: ModelConfig, params: Params, tokenizer: Tokenizer, options: LlamaCppRowsOptions): Promise<LlamaCppRows> {
    const file = await writeTempGguf(config, params, tokenizer, { type: "f32", name: "served", source: "served model" });
    let model: LlamaCppModel | undefined;
    try {
      model = await LlamaCppModel.load(file.path);
      const context = await model.model.createContext({
        contextSize: options.contextLength, // per sequence
        sequences: options.maxRows,
        threads: options.threads,
        // Exactness over memory: an F32 cache and no flash attention (which rounds queries to half
        // precision on the CPU) keep llama.cpp's log-probs within ~1e-5 of jax-js's, and the greedy
        // text the same; llama.cpp's default F16 cache moves log-probs by ~1e-2.
        flashAttention: false,
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32",
      });
      const sequences = Array.from({ length: options.maxRows }, () => context.getSequence());
      return new LlamaCppRows(model, context, sequences, config.vocab_size, options.contextLength, file.remove);
    } catch (err) {
      await model?.dispose();
      await file.remove();
      throw err;
    }
  }

  get rows(): number {
    return this.#rowSequence.length;
  }

  arrange(from: number[]): void {
    if (from.length > this.sequences.length) throw new Error(`llama.cpp rows: ${from.length} rows for ${this.sequences.length} sequences`);
    const kept = new Set(from.filter((j) => j >= 0));
    this.#rowSequence.forEach((s, j) => !kept.has(j) && this.#release(s));
    this.#rowSequence = from.map((j) => (j < 0 ? -1 : this.#rowSequence[j]!));
  }

  clear(r: number): void {
    this.#release(this.#rowSequence[r]!);
    this.#rowSequence[r] = -1;
  }

  #release(s: number): void {
    if (s < 0) return;
    this.#idle.push(s);
    this.#stale.add(s);
  }

  /** An idle sequence for row r, its old tokens erased. */
  async #take(r: number): Promise<LlamaContextSequence> {
    if (this.#rowSequence[r] !== -1) throw new Error(`llama.cpp rows: row ${r} is not free`);
    const s = this.#idle.pop();
    if (s === undefined) throw new Error("llama.cpp rows: no free sequence");
    this.#rowSequence[r] = s;
    const sequence = this.sequences[s]!;
    if (this.#stale.delete(s)) await sequence.clearHistory();
    return sequence;
  }

  async insert(prompts: PromptRows[]): Promise<Float32Array[]> {
    for (const { ids, reach } of prompts) {
      if (ids.length === 0 || ids.length >= reach || reach > this.contextLength) throw new Error(`llama.cpp rows: a prompt of ${ids.length} tokens growing to ${reach} does not fit ${this.contextLength}`);
    }
    const sequences = await Promise.all(prompts.map(({ rows }) => Promise.all(rows.map((r) => this.#take(r)))));
    // Each choice's row reads the prompt itself (node-llama-cpp cannot copy one sequence's cache to
    // another); issued in one turn of the event loop, the reads share llama.cpp's decode batches.
    const reads = prompts.map(({ ids }, i) => Promise.all(sequences[i]!.map((sequence) => sequence.controlledEvaluate(withLogitsAtEnd(ids)))));
    return (await Promise.all(reads)).map((perRow) => this.#logitsOf(perRow[0]!));
  }

  async step(tokens: Int32Array, active: readonly boolean[], draws: readonly (EngineDraw | null)[] = []): Promise<Float32Array> {
    const v = this.vocabSize;
    const out = new Float32Array(this.rows * v);
    await Promise.all(this.#rowSequence.map(async (s, r) => {
      if (!active[r]) return;
      if (s < 0) throw new Error(`llama.cpp rows: row ${r} is empty`);
      const sequence = this.sequences[s]!;
      const draw = draws[r];
      if (draw) {
        // llama.cpp's own draw: the full logits' way into JavaScript (an array of 2·V numbers made a
        // Map) costs more than the step at V = 49,152 (README, Serving). node-llama-cpp's sampler
        // defaults (top-k 40, top-p 0.95) are overridden: top-k off, the request's top-p.
        const options = draw.temperature === 0 ? {} : { temperature: draw.temperature, topP: draw.topP, topK: 0, minP: 0, seed: draw.seed };
        const [result] = await sequence.controlledEvaluate([[tokens[r]! as Token, { generateNext: { token: true, options } }]]);
        const token = result?.next.token;
        if (token == null) throw new Error("llama.cpp rows: no token");
        out.fill(-Infinity, r * v, (r + 1) * v);
        out[r * v + token] = 0;
        return;
      }
      out.set(this.#logitsOf(await sequence.controlledEvaluate(withLogitsAtEnd([tokens[r]!]))), r * v);
    }));
    return out;
  }

  /** The next-token logits of an evaluation's last token, by token id. */
  #logitsOf(result: Awaited<ReturnType<LlamaContextSequence["controlledEvaluate"]>>): Float32Array {
    const logits = result[result.length - 1]?.next.logits;
    if (!logits) throw new Error("llama.cpp rows: no logits for the last token");
    const out = new Float32Array(this.vocabSize);
    for (const [token, logit] of logits) out[token] = logit;
    return out;
  }

  async dispose(): Promise<void> {
    for (const s of this.sequences) s.dispose();
    await this.context.dispose();
    await this.model.dispose();
    await this.removeGguf();
  }
}

/** `ids` to evaluate, asking for the full logits after the last. */
function withLogitsAtEnd(ids: ArrayLike<number>): Evaluation {
  const items: Evaluation = Array.from(ids, (t) => t as Token);
  items[items.length - 1] = [ids[ids.length - 1] as Token, { generateNext: { logits: true } }];
  return items;
}
