// The standard benchmark's model and its three workloads, shared by the timing benchmark
// (standard.ts) and the kernel profiler (kernel-profile.ts). GPT-2 style, vocab 512, context 128,
// d_model 256, 4 layers, 4 heads, MLP 1024, pre-LN, untied head; batch 8 x 128; Adam.
import { initEngine, type Array } from "../engine/runtime.ts";
import { compile, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { parseConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import { causalLmForward, fullBatch } from "../models/forward.ts";
import { countParams, initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { Generator } from "../generation/generate.ts";
import { TrainStep } from "../train/step.ts";
import { lmBatchFromRows, lmLoss } from "../train/lm-loss.ts";

export const standardConfig = parseConfig(
  {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    vocab_size: 512,
    n_positions: 128,
    n_embd: 256,
    n_layer: 4,
    n_head: 4,
    n_inner: 1024,
    activation_function: "gelu_new",
    layer_norm_epsilon: 1e-5,
    tie_word_embeddings: false,
  },
  "standard benchmark model",
);

export type WorkloadName = "train" | "forward" | "generate";
export const workloadNames: WorkloadName[] = ["train", "forward", "generate"];

export interface StandardWorkloads {
  /** Each runs one repetition to completion (results read back to the host). */
  run: Record<WorkloadName, () => Promise<void>>;
  params: number;
  dispose(): void;
}

export async function standardWorkloads(): Promise<StandardWorkloads> {
  await initEngine();
  const arch = architectureFor(standardConfig);
  let params: Params = initParams(arch, 0);
  const rng = new HostRng(0);
  const [b, t] = [8, 128];
  const rows = Array.from({ length: b }, () => Array.from({ length: t }, () => rng.int(512)));
  const batch = lmBatchFromRows(rows, rows.map((r) => r.map(() => 1)), t);

  const trainer = new TrainStep(lmLoss(arch), { adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, maxGradNorm: null });
  let state = trainer.init(params);
  let stepNumber = 0;
  const forward = compile((p: Params, i: Array, q: Array, m: Array) => causalLmForward(arch, p, fullBatch(i, q, m)));
  const generator = new Generator(arch);
  // 8 sequences, 64-token prompts, 64 new tokens.
  const prompts = rows.map((r) => r.slice(0, 64));

  return {
    run: {
      train: async () => {
        const out = await trainer.step(params, state, [batch], 1e-3, ++stepNumber);
        params = out.params;
        state = out.state;
      },
      forward: async () => {
        await toHost(forward(params, batch.inputIds, batch.positionIds, batch.attentionMask));
      },
      generate: async () => {
        const out = await generator.generate(params, prompts, { temperature: 0, maxNewTokens: 64 });
        if (out.some((g) => g.completionIds.length !== 64)) throw new Error("benchmark generation stopped early");
      },
    },
    params: countParams(params),
    dispose: () => {
      release([params, state, batch]);
      forward.dispose();
      generator.dispose();
    },
  };
}
