// Batched, KV-cached generation. Prompts are left-padded to a common length; the cache has a fixed
// size (prompt + new tokens) so a single compiled decode step serves every position.
import { np } from "../engine/runtime.ts";
import { fromHost, intsFromHost, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import type { Architecture } from "../models/architecture.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { sampleToken, type SamplingOptions } from "./sampling.ts";
import { decodingSteps, type DecodingSteps } from "./steps.ts";
import { cutAtStop, stopIndex } from "./text.ts";

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  seed: number;
  /** Token ids that end a sequence (the tokenizer's EOS by default). */
  eosTokenIds: number[];
  /** Text that ends a sequence; the returned text is cut before it. Needs a tokenizer. */
  stopStrings: string[];
}

export const defaultGenerateOptions: GenerateOptions = {
  maxNewTokens: 64,
  temperature: 1,
  topK: 0,
  topP: 1,
  seed: 0,
  eosTokenIds: [],
  stopStrings: [],
};

export interface Generation {
  promptIds: number[];
  completionIds: number[];
  /** log p(token) under the temperature-scaled distribution, one per completion token. */
  logprobs: number[];
  text: string;
  finishReason: "eos" | "stop" | "length";
}

/**
 * Compiled prefill and decode functions for one architecture, cached per (batch, prompt, cache) shape
 * by jax-js's jit; build once per model and reuse across calls.
 */
export class Generator {
  readonly #arch: Architecture;
  readonly #steps: DecodingSteps;

  constructor(arch: Architecture) {
    this.#arch = arch;
    this.#steps = decodingSteps(arch);
  }

  /**
   * Generates for every prompt (token ids, BOS included) in one batch. With a tokenizer, only ids
   * it can decode are sampled: a padded vocabulary (Qwen2.5's 151,936 rows for 151,665 tokens) has
   * rows no text maps to, and log-probs are then over the tokenizer's ids.
   */
  async generate(params: Params, prompts: number[][], options: Partial<GenerateOptions> = {}, tokenizer?: Tokenizer): Promise<Generation[]> {
    const names = this.#arch.transposedForDecoding;
    if (names.length === 0) return this.#generate(params, prompts, options, tokenizer);
    // One transposed copy per call (the weights change between calls in RL), read by every step.
    const transposed = this.#steps.transpose(names.map((n) => params[n]!));
    try {
      return await this.#generate({ ...params, ...Object.fromEntries(names.map((n, i) => [n, transposed[i]!])) }, prompts, options, tokenizer);
    } finally {
      release(transposed);
    }
  }

  async #generate(params: Params, prompts: number[][], options: Partial<GenerateOptions>, tokenizer?: Tokenizer): Promise<Generation[]> {
    const opts: GenerateOptions = { ...defaultGenerateOptions, ...options };
    const arch = this.#arch;
    const b = prompts.length;
    if (b === 0) return [];
    if (prompts.some((p) => p.length === 0)) throw new Error("generate: every prompt needs at least one token (BOS)");
    const promptLen = Math.max(...prompts.map((p) => p.length));
    const capacity = promptLen + opts.maxNewTokens;
    if (capacity > arch.maxPositions) {
      throw new Error(
        `prompt of ${promptLen} tokens + ${opts.maxNewTokens} new tokens exceeds the model's context of ${arch.maxPositions} tokens`,
      );
    }
    if (opts.stopStrings.length > 0 && !tokenizer) throw new Error("generate: stop strings need a tokenizer");
    const rng = new HostRng(opts.seed);
    const sampleable = Math.min(arch.vocabSize, tokenizer?.vocabSize ?? arch.vocabSize);

    // Left padding: row r's real tokens occupy the last prompts[r].length slots.
    const padId = 0;
    const ids = new Int32Array(b * promptLen).fill(padId);
    const pos = new Int32Array(b * promptLen);
    const keyMask = new Float32Array(b * capacity);
    const nextPos = new Int32Array(b);
    prompts.forEach((p, r) => {
      const offset = promptLen - p.length;
      for (let i = 0; i < p.length; i++) {
        ids[r * promptLen + offset + i] = p[i]!;
        pos[r * promptLen + offset + i] = i;
        keyMask[r * capacity + offset + i] = 1;
      }
      nextPos[r] = p.length;
    });
    const promptMask = new Float32Array(b * promptLen);
    for (let r = 0; r < b; r++) promptMask.set(keyMask.subarray(r * capacity, r * capacity + promptLen), r * promptLen);

    const [nKv, hd] = [arch.numKvHeads, arch.headDim];
    const padSlots = np.zeros([b, capacity - promptLen, nKv, hd]);
    // Compiled functions borrow their inputs (engine/arrays.ts), so temporaries are released after.
    const prefillInputs = [intsFromHost(ids, [b, promptLen]), intsFromHost(pos, [b, promptLen]), fromHost(promptMask, [b, promptLen]), padSlots] as const;
    const first = this.#steps.prefill(params, ...prefillInputs);
    release(prefillInputs);
    let cache = first.cache;
    let logits = await toHost(first.logits);

    const out: Generation[] = prompts.map((p) => ({ promptIds: p, completionIds: [], logprobs: [], text: "", finishReason: "length" }));
    const done = new Array<boolean>(b).fill(false);
    const eos = new Set(opts.eosTokenIds);
    for (let step = 0; step < opts.maxNewTokens; step++) {
      const chosen = new Int32Array(b);
      for (let r = 0; r < b; r++) {
        if (done[r]) continue;
        const { id, logprob } = sampleToken(logits.subarray(r * arch.vocabSize, r * arch.vocabSize + sampleable), opts, rng);
        chosen[r] = id;
        const g = out[r]!;
        if (eos.has(id)) {
          g.finishReason = "eos";
          done[r] = true;
          continue;
        }
        g.completionIds.push(id);
        g.logprobs.push(logprob);
        if (opts.stopStrings.length > 0 && stopIndex(tokenizer!.decode(g.completionIds, { skipSpecialTokens: true }), opts.stopStrings) >= 0) {
          g.finishReason = "stop";
          done[r] = true;
        }
      }
      if (done.every(Boolean) || step === opts.maxNewTokens - 1) break;
      // Feed the sampled tokens; finished rows keep decoding harmlessly and are ignored.
      const slot = promptLen + step;
      const slotOneHot = new Float32Array(b * capacity);
      const stepPos = new Int32Array(b);
      for (let r = 0; r < b; r++) {
        keyMask[r * capacity + slot] = 1;
        slotOneHot[r * capacity + slot] = 1;
        stepPos[r] = nextPos[r]!++;
      }
      const stepInputs = [
        intsFromHost(chosen, [b, 1]),
        intsFromHost(stepPos, [b, 1]),
        fromHost(keyMask, [b, capacity]),
        fromHost(slotOneHot, [b, capacity]),
      ] as const;
      const next = this.#steps.decode(params, cache, ...stepInputs);
      release([cache, stepInputs]);
      cache = next.cache;
      logits = await toHost(next.logits);
    }
    release(cache);
    if (tokenizer) {
      for (const g of out) {
        g.text = tokenizer.decode(g.completionIds, { skipSpecialTokens: true });
        if (g.finishReason === "stop") g.text = cutAtStop(g.text, opts.stopStrings);
      }
    }
    return out;
  }

  dispose(): void {
    for (const step of Object.values(this.#steps)) step.dispose();
  }
}
