// The standard benchmark: GPT-2 style, vocab 512, context 128, d_model 256, 4 layers, 4 heads,
// MLP 1024, pre-LN, untied head, batch 8 x 128, Adam. Medians of a full training step, a forward
// pass, and KV-cached generation of 64 tokens for 8 sequences after a 64-token prompt.
import { initEngine, type Array } from "../engine/runtime.ts";
import { kernelThreadCount } from "../engine/worker-shim.ts";
import { relaxedSimdAvailable } from "../engine/wasm-features.ts";
import { compile, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { parseConfig } from "../models/config.ts";
import { architectureFor } from "../models/architecture.ts";
import { causalLmForward, fullBatch } from "../models/forward.ts";
import { initParams } from "../models/params.ts";
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

export interface BenchResult {
  train_step_ms: number;
  forward_ms: number;
  generate_64_ms: number;
  peak_rss_mb: number;
  params: number;
  runs: number;
  threads: number;
  /** Whether the kernels had fused multiply-adds (src/engine/wasm-features.ts). */
  relaxed_simd: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timeIt(runs: number, warmup: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

export async function runStandardBenchmark(options: { runs?: number; warmup?: number; log?: (msg: string) => void } = {}): Promise<BenchResult> {
  await initEngine();
  const runs = options.runs ?? 10;
  const warmup = options.warmup ?? 2;
  const log = options.log ?? (() => {});
  const arch = architectureFor(standardConfig);
  let params: Params = initParams(arch, 0);
  const rng = new HostRng(0);
  const [b, t] = [8, 128];
  const rows = Array.from({ length: b }, () => Array.from({ length: t }, () => rng.int(512)));
  const batch = lmBatchFromRows(rows, rows.map((r) => r.map(() => 1)), t);

  log("train step");
  const trainer = new TrainStep(lmLoss(arch), { adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, maxGradNorm: null });
  let state = trainer.init(params);
  let stepNumber = 0;
  const trainMs = await timeIt(runs, warmup, async () => {
    const out = await trainer.step(params, state, [batch], 1e-3, ++stepNumber);
    params = out.params;
    state = out.state;
  });
  release(state);

  log("forward");
  const forward = compile((p: Params, i: Array, q: Array, m: Array) => causalLmForward(arch, p, fullBatch(i, q, m, true)));
  const forwardMs = await timeIt(runs, warmup, async () => {
    await toHost(forward(params, batch.inputIds, batch.positionIds, batch.attentionMask));
  });

  log("generate");
  const generator = new Generator(arch);
  const prompts = rows.map((r) => r.slice(0, 64));
  const generateMs = await timeIt(Math.max(3, Math.floor(runs / 2)), 1, async () => {
    const out = await generator.generate(params, prompts, { temperature: 0, maxNewTokens: 64 });
    if (out.some((g) => g.completionIds.length !== 64)) throw new Error("benchmark generation stopped early");
  });
  release([params, batch]);
  return {
    train_step_ms: round(trainMs),
    forward_ms: round(forwardMs),
    generate_64_ms: round(generateMs),
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024),
    params: Object.values(arch.paramShapes).reduce((n, s) => n + s.reduce((a, c) => a * c, 1), 0),
    runs,
    threads: kernelThreadCount(),
    relaxed_simd: relaxedSimdAvailable(),
  };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
