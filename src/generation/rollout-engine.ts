// Where rollouts are sampled: the built-in jax-js generator (the default, exact) or llama.cpp
// (`--rollout_engine llama.cpp`), behind one interface. The engine only samples: trainers recompute
// every log-prob they train on, so llama.cpp's probabilities enter only as the sampler's log-probs
// (the importance ratio between the two is what TRL logs and corrects for vLLM).
// The llama.cpp engine gets the current weights by re-exporting them as a GGUF file for each call
// (f32, into a private temp directory): at this project's sizes a re-export takes milliseconds to a
// second, and it keeps llama.cpp exactly on the trainer's policy.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Architecture } from "../models/architecture.ts";
import { writeGgufFromTensors } from "../models/gguf-export.ts";
import { paramsToTensors } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { Generator, defaultGenerateOptions, type GenerateOptions, type Generation } from "./generate.ts";
import { LlamaCppGenerator } from "./llama-cpp.ts";

export const ROLLOUT_ENGINES = ["jax-js", "llama.cpp"] as const;
export type RolloutEngineName = (typeof ROLLOUT_ENGINES)[number];

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
}

export function createRolloutEngine(name: RolloutEngineName, arch: Architecture, options: LlamaCppEngineOptions = {}): RolloutEngine {
  return name === "jax-js" ? new Generator(arch) : new LlamaCppRolloutEngine(arch, options);
}

/** Rollouts from llama.cpp on the policy's weights of the moment; needs the tokenizer (the GGUF carries it). */
export class LlamaCppRolloutEngine implements RolloutEngine {
  #dir: Promise<string> | undefined;

  constructor(
    private readonly arch: Architecture,
    private readonly options: LlamaCppEngineOptions = {},
  ) {}

  async generate(params: Params, prompts: number[][], options: Partial<GenerateOptions> = {}, tokenizer?: Tokenizer): Promise<Generation[]> {
    if (!tokenizer) throw new Error("the llama.cpp rollout engine needs the tokenizer (it goes into the GGUF file)");
    const o: GenerateOptions = { ...defaultGenerateOptions, ...options };
    if (o.stopStrings.length > 0) throw new Error("the llama.cpp rollout engine stops at EOS ids only, not at stop strings");
    const extra = Object.keys(params).filter((name) => !(name in this.arch.paramShapes));
    if (extra.length > 0) throw new Error(`the llama.cpp rollout engine takes a model's own weights; ${extra[0]} is not one (merge an adapter first)`);
    if (prompts.length === 0) return [];
    this.#dir ??= mkdtemp(join(tmpdir(), "rlhf-rollout-"));
    const gguf = join(await this.#dir, "policy.gguf");
    await writeGgufFromTensors(gguf, this.arch.config, await paramsToTensors(params), tokenizer, { type: "f32", name: "policy", source: "policy", quiet: true });
    const contextSize = Math.max(...prompts.map((p) => p.length)) + o.maxNewTokens;
    const native = await LlamaCppGenerator.open(gguf, { contextSize, threads: this.options.threads ?? 1, sequences: prompts.length, kvCacheType: this.options.kvCacheType ?? "F16" });
    try {
      const sampled = await native.sampleBatch(prompts, { temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed, maxNewTokens: o.maxNewTokens, eosTokenIds: o.eosTokenIds });
      return sampled.map((s, i) => ({
        promptIds: prompts[i]!,
        completionIds: s.completionIds,
        logprobs: s.logprobs,
        text: tokenizer.decode(s.completionIds, { skipSpecialTokens: true }),
        finishReason: s.stoppedAtEos ? "eos" : "length",
      }));
    } finally {
      await native.dispose();
    }
  }

  async dispose(): Promise<void> {
    if (this.#dir) await rm(await this.#dir, { recursive: true, force: true });
  }
}
