// Where rollouts are sampled: the built-in jax-js generator (the default, exact) or llama.cpp
// (`--rollout_engine llama.cpp`), behind one interface. The engine only samples: trainers recompute
// every log-prob they train on, so llama.cpp's probabilities enter only as the sampler's log-probs
// (the importance ratio between the two is what TRL logs and corrects for vLLM).
// How llama.cpp gets the policy of the moment:
// - whole weights (full fine-tuning): re-exported as a GGUF (f32 unless `weightType` says f16 or
//   q8_0; into a private temp directory)
//   whenever they are not the arrays exported last, which keeps llama.cpp exactly on the trainer's
//   policy and exports a model that does not change (eval, pairs) once;
// - a LoRA policy ("adapter" sync, the default): the frozen base is exported and loaded once, and
//   each call writes only the adapter as a GGUF LoRA and applies it to a fresh context — the split
//   TRL's async GRPO uses with vLLM. "merged" sync re-exports W + s·B·A instead, as for whole
//   weights (README, "Native generation": adapter sync measured against it).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { release } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";
import type { Architecture } from "../models/architecture.ts";
import { GGUF_TYPES, hasGgufLoraForm, writeGgufAdapterFromTensors, writeGgufFromTensors, type GgufFileType } from "../models/gguf-export.ts";
import { adapterShapes, mergedWeights, type LoraConfig } from "../models/lora.ts";
import { paramsToTensors } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { Generator, defaultGenerateOptions, type GenerateOptions, type Generation } from "./generate.ts";
import { LlamaCppGenerator, LlamaCppModel, type LlamaCppOptions } from "./llama-cpp.ts";

export const ROLLOUT_ENGINES = ["jax-js", "llama.cpp"] as const;
export type RolloutEngineName = (typeof ROLLOUT_ENGINES)[number];

/** The weight types llama.cpp can sample with (GGUF export types). */
export const ROLLOUT_DTYPES = GGUF_TYPES;
export type RolloutDtype = GgufFileType;

export const LORA_SYNCS = ["adapter", "merged"] as const;
export type LoraSync = (typeof LORA_SYNCS)[number];

/** Samples completions of token-id prompts from a policy's current parameters (Generator's contract). */
export interface RolloutEngine {
  generate(params: Params, prompts: number[][], options?: Partial<GenerateOptions>, tokenizer?: Tokenizer): Promise<Generation[]>;
  dispose(): void | Promise<void>;
}

export interface LlamaCppEngineOptions {
  /** CPU threads (1 by default: on a shared machine llama.cpp's threads stall waiting for each other). */
  threads?: number;
  /** llama.cpp's KV cache: F16 (its default, half the memory) or F32 (computes as this project does). */
  kvCacheType?: "F16" | "F32";
  /** How a LoRA policy reaches llama.cpp (see the file's head); "adapter" by default. */
  loraSync?: LoraSync;
  /** The exported weights' type (f32 by default); an adapter is written in f32 whatever this is. */
  weightType?: RolloutDtype;
}

/** The engine `name` for a policy of `arch`; a LoRA policy passes its adapter's config (its params then hold base and adapter). */
export function createRolloutEngine(name: RolloutEngineName, arch: Architecture, options: LlamaCppEngineOptions = {}, adapter?: LoraConfig): RolloutEngine {
  return name === "jax-js" ? new Generator(arch) : new LlamaCppRolloutEngine(arch, options, adapter);
}

/** The base GGUF loaded in llama.cpp, and the arrays it was exported from (a change in any means a new export). */
interface LoadedBase {
  arrays: Map<string, Array>;
  model: LlamaCppModel;
}

/** Rollouts from llama.cpp on the policy's weights of the moment; needs the tokenizer (the GGUF carries it). */
export class LlamaCppRolloutEngine implements RolloutEngine {
  #dir: Promise<string> | undefined;
  #base: LoadedBase | undefined;
  /** Adapter files written so far: each call gets a new name, as node-llama-cpp caches adapters by path. */
  #adapters = 0;
  readonly #adapterShapes: Record<string, number[]>;

  constructor(
    private readonly arch: Architecture,
    private readonly options: LlamaCppEngineOptions = {},
    private readonly adapter?: LoraConfig,
  ) {
    this.#adapterShapes = adapter ? adapterShapes(arch, adapter) : {};
  }

  async generate(params: Params, prompts: number[][], options: Partial<GenerateOptions> = {}, tokenizer?: Tokenizer): Promise<Generation[]> {
    if (!tokenizer) throw new Error("the llama.cpp rollout engine needs the tokenizer (it goes into the GGUF file)");
    const o: GenerateOptions = { ...defaultGenerateOptions, ...options };
    if (o.stopStrings.length > 0) throw new Error("the llama.cpp rollout engine stops at EOS ids only, not at stop strings");
    const { base, adapter } = this.#split(params);
    if (prompts.length === 0) return [];
    const contextSize = Math.max(...prompts.map((p) => p.length)) + o.maxNewTokens;
    const contextOptions: LlamaCppOptions = { contextSize, threads: this.options.threads ?? 1, sequences: prompts.length, kvCacheType: this.options.kvCacheType ?? "F16" };
    const native = await this.#open(base, adapter, tokenizer, contextOptions);
    try {
      const sampled = await native.generator.sampleBatch(prompts, { temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed, maxNewTokens: o.maxNewTokens, eosTokenIds: o.eosTokenIds });
      return sampled.map((s, i) => ({
        promptIds: prompts[i]!,
        completionIds: s.completionIds,
        logprobs: s.logprobs,
        text: tokenizer.decode(s.completionIds, { skipSpecialTokens: true }),
        finishReason: s.stoppedAtEos ? "eos" : "length",
      }));
    } finally {
      await native.generator.dispose();
      if (native.adapterFile) await rm(native.adapterFile, { force: true });
    }
  }

  /** The model's own weights and the adapter's (empty without one); refuses anything else. */
  #split(params: Params): { base: Params; adapter: Params } {
    const base: Params = {};
    const adapter: Params = {};
    for (const [name, p] of Object.entries(params)) {
      if (name in this.arch.paramShapes) base[name] = p;
      else if (name in this.#adapterShapes) adapter[name] = p;
      else throw new Error(`the llama.cpp rollout engine takes a model's own weights${this.adapter ? " and its adapter's" : ""}; ${name} is not one${this.adapter ? "" : " (merge an adapter first)"}`);
    }
    const missing = Object.keys(this.#adapterShapes).find((name) => !(name in adapter));
    if (missing) throw new Error(`the llama.cpp rollout engine was given a LoRA policy without ${missing}`);
    return { base, adapter };
  }

  /** A generator on the policy of the moment, by the sync its weights call for. */
  async #open(base: Params, adapter: Params, tokenizer: Tokenizer, options: LlamaCppOptions): Promise<{ generator: LlamaCppGenerator; adapterFile?: string }> {
    const dir = await (this.#dir ??= mkdtemp(join(tmpdir(), "rlhf-rollout-")));
    const lora = this.adapter;
    if (lora && hasGgufLoraForm(lora) && (this.options.loraSync ?? "adapter") === "adapter") {
      const model = await this.#loadedBase(base, tokenizer, dir);
      const adapterFile = join(dir, `adapter-${++this.#adapters}.gguf`);
      await writeGgufAdapterFromTensors(adapterFile, this.arch.config, lora, await paramsToTensors(adapter), { type: "f32", name: "policy-adapter", source: "policy adapter", quiet: true });
      return { generator: await model.generator({ ...options, lora: adapterFile }), adapterFile };
    }
    // Whole weights are exported and loaded again only when they changed (a trainer's step makes new
    // arrays; eval's and pairs' models never change, so they are exported once).
    if (!lora) return { generator: await (await this.#loadedBase(base, tokenizer, dir)).generator(options) };
    const merged = mergedWeights(this.arch, lora, base, adapter);
    const gguf = join(dir, "policy.gguf");
    try {
      await writeGgufFromTensors(gguf, this.arch.config, await paramsToTensors({ ...base, ...merged }), tokenizer, { type: this.options.weightType ?? "f32", name: "policy", source: "policy", quiet: true });
    } finally {
      release(merged);
    }
    return { generator: await LlamaCppGenerator.open(gguf, options) };
  }

  /** The base loaded in llama.cpp, exported again only when one of its arrays is not the one exported last (frozen bases never are). */
  async #loadedBase(base: Params, tokenizer: Tokenizer, dir: string): Promise<LlamaCppModel> {
    const loaded = this.#base;
    const same = loaded && loaded.arrays.size === Object.keys(base).length && Object.entries(base).every(([name, p]) => loaded.arrays.get(name) === p);
    if (loaded && same) return loaded.model;
    if (loaded) await loaded.model.dispose();
    this.#base = undefined;
    const gguf = join(dir, "base.gguf");
    await writeGgufFromTensors(gguf, this.arch.config, await paramsToTensors(base), tokenizer, { type: this.options.weightType ?? "f32", name: "base", source: "policy base", quiet: true });
    this.#base = { arrays: new Map(Object.entries(base)), model: await LlamaCppModel.load(gguf) };
    return this.#base.model;
  }

  async dispose(): Promise<void> {
    await this.#base?.model.dispose();
    this.#base = undefined;
    if (this.#dir) await rm(await this.#dir, { recursive: true, force: true });
  }
}
