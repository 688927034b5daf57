// A model that answers a conversation with text: a remote OpenAI-compatible server, or one of the
// project's models (llama2.c file, HF directory, LoRA adapter) rendered through its chat template
// and sampled with the KV-cached generator. rlhf cai revise writes with it; rlhf judge asks a
// remote judge through it.
import { compile, fromHost, intsFromHost, toHost, release } from "../engine/arrays.ts";
import { eosIdsOf } from "../generation/eos.ts";
import { Generator } from "../generation/generate.ts";
import { isSequenceClassifier } from "../models/config.ts";
import { fullBatch, nextTokenLogprobs } from "../models/forward.ts";
import { disposeModel, loadModel, resolveTokenizer, type LoadedModel } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import { applyChatTemplate, type ChatMessage } from "../tokenizers/chat.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { Array } from "../engine/runtime.ts";
import { InputError } from "../io/errors.ts";
import { chatCompletion, type ChatEndpoint } from "./openai-chat.ts";

export interface CompletionOptions {
  temperature: number;
  maxTokens: number;
  seed: number;
}

export interface ChatModel {
  /** The source as given (URL or path), and the remote model's name. */
  readonly source: string;
  readonly model: string | null;
  /** One attempt: a remote model throws RetryableError for what another attempt may fix. */
  complete(messages: ChatMessage[], options: CompletionOptions): Promise<string>;
  dispose(): void;
}

export function remoteChatModel(endpoint: ChatEndpoint): ChatModel {
  return {
    source: endpoint.baseUrl,
    model: endpoint.model,
    complete: (messages, o) => chatCompletion(endpoint, { messages, temperature: o.temperature, max_tokens: o.maxTokens, seed: o.seed }),
    dispose: () => {},
  };
}

type Scorer = ((params: Params, ids: Array, positions: Array, mask: Array) => Array) & { dispose(): void };

/** One of the project's causal LMs with its tokenizer. */
export class LocalModel implements ChatModel {
  readonly model = null;
  #generator: Generator | null = null;
  #scorer: Scorer | null = null;
  /** Conversations cut from the left to fit the context (reported by cai revise). */
  truncatedPrompts = 0;

  private constructor(readonly source: string, readonly loaded: LoadedModel, readonly tokenizer: Tokenizer) {}

  static async load(path: string, options: { base?: string | undefined; tokenizer?: string | undefined } = {}): Promise<LocalModel> {
    const loaded = await loadModel(path, { base: options.base });
    if (isSequenceClassifier(loaded.config)) throw new InputError(`${path} is a reward model (sequence classifier); a judge or writer needs a causal LM`);
    return new LocalModel(path, loaded, await resolveTokenizer(loaded, options.tokenizer));
  }

  /** The conversation as the model reads it, ending where the assistant's answer starts. */
  promptText(messages: ChatMessage[]): string {
    return applyChatTemplate(this.tokenizer, messages, { addGenerationPrompt: true });
  }

  async complete(messages: ChatMessage[], o: CompletionOptions): Promise<string> {
    const context = this.loaded.arch.maxPositions;
    // At most half the context is answer, so the conversation keeps the other half.
    const maxNew = Math.max(1, Math.min(o.maxTokens, context >> 1));
    let ids = this.tokenizer.encode(this.promptText(messages));
    // Keep the latest turns (and BOS) when the conversation outgrows the context: a small model's
    // context (512 tokens for the TinyStories models) is shorter than a critique-and-revise exchange.
    if (ids.length + maxNew > context) {
      const bos = this.tokenizer.bosTokenId !== null && ids[0] === this.tokenizer.bosTokenId ? [ids[0]] : [];
      ids = [...bos, ...ids.slice(ids.length - (context - maxNew - bos.length))];
      this.truncatedPrompts++;
    }
    this.#generator ??= new Generator(this.loaded.arch);
    const [g] = await this.#generator.generate(
      this.loaded.params,
      [ids],
      { maxNewTokens: maxNew, temperature: o.temperature, seed: o.seed, eosTokenIds: eosIdsOf(this.loaded, this.tokenizer) },
      this.tokenizer,
    );
    return g!.text.trim();
  }

  /**
   * log p(answer | prompt) of each row, summed over the answer's tokens: one forward pass over the
   * rows right-padded together (lengths rounded up to 32 so few shapes are compiled).
   */
  async answerLogprobs(rows: { prompt: number[]; answer: number[] }[]): Promise<number[]> {
    const lengths = rows.map((r) => r.prompt.length + r.answer.length);
    const t = Math.min(this.loaded.arch.maxPositions, Math.ceil(Math.max(...lengths) / 32) * 32);
    if (Math.max(...lengths) > t) throw new Error("answerLogprobs: a row exceeds the context");
    const b = rows.length;
    const ids = new Int32Array(b * t);
    const pos = new Int32Array(b * t);
    const mask = new Float32Array(b * t);
    rows.forEach((r, i) => {
      [...r.prompt, ...r.answer].forEach((id, j) => {
        ids[i * t + j] = id;
        pos[i * t + j] = j;
        mask[i * t + j] = 1;
      });
    });
    const arch = this.loaded.arch;
    this.#scorer ??= compile((params: Params, idArr: Array, posArr: Array, maskArr: Array) => nextTokenLogprobs(arch, params, fullBatch(idArr, posArr, maskArr)));
    const inputs = [intsFromHost(ids, [b, t]), intsFromHost(pos, [b, t]), fromHost(mask, [b, t])] as const;
    const logprobs = await toHost(this.#scorer(this.loaded.params, ...inputs)); // [B, T-1]: position j scores token j+1
    release(inputs);
    return rows.map((r, i) => {
      let sum = 0;
      for (let j = r.prompt.length; j < r.prompt.length + r.answer.length; j++) sum += logprobs[i * (t - 1) + j - 1]!;
      return sum;
    });
  }

  dispose(): void {
    this.#generator?.dispose();
    this.#scorer?.dispose();
    disposeModel(this.loaded);
  }
}
