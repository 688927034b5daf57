// The engine's memory before a run starts: what a trainer will hold in jax-js's one 32-bit wasm
// heap (4 GiB, every model, gradient, optimizer moment and activation), estimated from the model's
// shape and the run's batch sizes, so that a run that cannot fit is refused with one line that
// says what to change, instead of dying in a RangeError.
//
// The activation terms are measured, not derived: jax-js keeps what autodiff needs plus the
// temporaries of each fused kernel, and the patched heap (docs/jax-js-notes.md) holds a buffer from
// its first write to its last use. Peak memory of a training step on Llama and GPT-2 shapes
// (src/train/memory-plan.test.ts re-measures them) is about
//   3P (weights, two AdamW moments)  +  0.9P (gradients and the update)
//   + 4 B · T · L · a · Σout          (per layer and token: a floats per output of its matrices, measured
//                                      per architecture: Architecture.trainFloatsPerOutput, 3.0 Llama, 3.6 GPT-2)
//   + 8 B · H · T² · L                 (attention scores and probabilities)
//   + 8 · min(N·V, head block)         (the LM head's logits and their gradient, lm-head.ts)
// with P the trainable bytes, L layers, Σout the output widths of a layer's matrices, H heads,
// N the tokens the head scores and V the vocabulary, plus a fixed engine overhead. Fragmentation adds
// 9–17% (`SLACK`): SmolLM2-135M's shape measured 2,668 MiB live at the peak and a 2,997 MiB heap at
// 1 × 256 (planned 3,164), 3,647 and 3,989 at 1 × 512 (planned 4,264: refused, at 97% of the
// limit); GPT-2 124M's 2,780 and 3,247 at 1 × 512 (planned 3,430). RLHF_MEMORY_PLAN=warn turns a
// refusal into a warning.
import { wasmMemoryStats } from "../engine/runtime.ts";
import { InputError } from "../io/errors.ts";
import type { Architecture } from "../models/architecture.ts";
import { HEAD_BLOCK_VALUES } from "../models/lm-head.ts";

/** jax-js's wasm memory: one 32-bit address space. */
export const ENGINE_LIMIT_BYTES = 2 ** 32;
/** Allocator slack: size classes and free blocks that do not fit the next request. */
const SLACK = 1.15;
const FLOAT = 4;
/** Floats per attention score kept for the backward pass (scores and probabilities). */
const TRAIN_FLOATS_PER_SCORE = 2;
/** Gradients, clipped gradients and the update's new weights, as a share of the trainable bytes. */
const UPDATE_SHARE = 0.9;
/** Floats a forward pass without gradients keeps per token and output, at most two layers' worth. */
const INFERENCE_FLOATS_PER_OUTPUT = 2;

/** The numbers of a model that decide its memory. */
export interface ModelShape {
  params: number;
  layers: number;
  /** Σ of the output widths of one layer's matrices (q, k, v, o, gate, up, down for Llama). */
  layerOutputs: number;
  /** Floats a training pass keeps per token, layer and output (Architecture.trainFloatsPerOutput, measured). */
  trainFloatsPerOutput: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
}

export function modelShape(arch: Architecture): ModelShape {
  const conv1d = new Set(arch.transposedForDecoding);
  let params = 0;
  let layerOutputs = 0;
  for (const [name, shape] of Object.entries(arch.paramShapes)) {
    params += shape.reduce((a, b) => a * b, 1);
    // Layer 0's matrices: [out, in], or [in, out] for GPT-2's Conv1D weights.
    if (shape.length === 2 && /\.0\./.test(name)) layerOutputs += conv1d.has(name) ? shape[1]! : shape[0]!;
  }
  return {
    params,
    layers: arch.numLayers,
    layerOutputs,
    trainFloatsPerOutput: arch.trainFloatsPerOutput,
    hidden: arch.hiddenSize,
    heads: Math.max(1, Math.round(arch.hiddenSize / arch.headDim)),
    kvHeads: arch.numKvHeads,
    headDim: arch.headDim,
    vocab: arch.vocabSize,
  };
}

export interface MemoryItem {
  what: string;
  bytes: number;
  /** How the figure comes about, for the printed plan. */
  detail: string;
}

export interface MemoryPlan {
  items: MemoryItem[];
  /** Σ items × allocator slack. */
  total: number;
  limit: number;
}

/** A forward/backward pass of `rows` × `length` tokens (a micro-batch), of which `headTokens` are scored by the LM head. */
export interface PassShape {
  rows: number;
  length: number;
  /** Tokens whose next-token log-prob is computed (0 for a reward or value model). */
  headTokens: number;
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const count = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n.toLocaleString("en-US"));

/** Weights (and, when trained, AdamW moments and the step's gradients) of one model. */
export function weightItems(name: string, shape: ModelShape, trained: boolean): MemoryItem[] {
  const bytes = shape.params * FLOAT;
  const items: MemoryItem[] = [{ what: `${name} weights`, bytes, detail: `${count(shape.params)} parameters` }];
  if (trained) {
    items.push({ what: `${name} AdamW moments`, bytes: 2 * bytes, detail: "two per parameter" });
    items.push({ what: `${name} gradients and update`, bytes: UPDATE_SHARE * bytes, detail: "while the step writes the new weights" });
  }
  return items;
}

function headBytes(tokens: number, vocab: number, budget: number): number {
  return 2 * FLOAT * Math.min(tokens * vocab, budget);
}

/** Activations of one training pass (forward + backward) through a model. */
export function trainPassItems(name: string, shape: ModelShape, pass: PassShape, headBudget = HEAD_BLOCK_VALUES): MemoryItem[] {
  const tokens = pass.rows * pass.length;
  const items: MemoryItem[] = [
    { what: `${name} activations`, bytes: FLOAT * tokens * shape.layers * shape.trainFloatsPerOutput * shape.layerOutputs, detail: `${shape.layers} layers × ${pass.rows} × ${pass.length} tokens` },
    { what: `${name} attention scores`, bytes: FLOAT * TRAIN_FLOATS_PER_SCORE * pass.rows * shape.heads * pass.length ** 2 * shape.layers, detail: `${shape.heads} heads × ${pass.length}² per row and layer` },
  ];
  if (pass.headTokens > 0) {
    items.push({ what: `${name} LM head`, bytes: headBytes(pass.headTokens, shape.vocab, headBudget), detail: `${count(pass.headTokens)} tokens × ${count(shape.vocab)} vocabulary, in blocks of ≤ ${count(headBudget)} logits` });
  }
  return items;
}

/** A forward pass without gradients (scoring, evaluation): a layer's temporaries and the head's block. */
export function inferencePassItems(name: string, shape: ModelShape, pass: PassShape, headBudget = HEAD_BLOCK_VALUES): MemoryItem[] {
  const tokens = pass.rows * pass.length;
  const bytes =
    FLOAT * tokens * INFERENCE_FLOATS_PER_OUTPUT * shape.layerOutputs +
    FLOAT * TRAIN_FLOATS_PER_SCORE * pass.rows * shape.heads * pass.length ** 2 +
    (pass.headTokens > 0 ? headBytes(pass.headTokens, shape.vocab, headBudget) / 2 : 0);
  return [{ what: `${name} forward pass`, bytes, detail: `${pass.rows} × ${pass.length} tokens, no gradients` }];
}

/** KV-cached sampling of `rows` sequences of up to `length` tokens (cache written by blending: two copies). */
export function generationItems(name: string, shape: ModelShape, rows: number, length: number, transposedCopy: number): MemoryItem[] {
  const cache = 2 * 2 * FLOAT * shape.layers * rows * length * shape.kvHeads * shape.headDim;
  const items: MemoryItem[] = [{ what: `${name} KV cache`, bytes: cache, detail: `${rows} sequences × ${length} positions` }];
  if (transposedCopy > 0) items.push({ what: `${name} decoding weights`, bytes: FLOAT * transposedCopy, detail: "transposed copies for decode steps" });
  return items;
}

/** Of two phases that never overlap (a training pass, an evaluation pass), the one that needs more. */
export function largerOf(a: MemoryItem[], b: MemoryItem[]): MemoryItem[] {
  const sum = (xs: MemoryItem[]) => xs.reduce((n, i) => n + i.bytes, 0);
  return sum(a) >= sum(b) ? a : b;
}

/**
 * What every run holds besides its models and passes: batches and masks on the device, RoPE tables,
 * jit constants, small buffers. Without it the plans of stories260K's runs (a 260K-parameter model,
 * whose activations are mostly not its matrices' outputs) came out a few MiB under the measured heap.
 */
const ENGINE_OVERHEAD_BYTES = 64 * 2 ** 20;

export function plan(items: MemoryItem[]): MemoryPlan {
  const all = [...items, { what: "engine overhead", bytes: ENGINE_OVERHEAD_BYTES, detail: "batches, masks, tables, small buffers" }];
  return { items: all, total: SLACK * all.reduce((s, i) => s + i.bytes, 0), limit: ENGINE_LIMIT_BYTES };
}

/** Parameters GPT-2's generator copies transposed (Architecture.transposedForDecoding). */
export function transposedParams(arch: Architecture): number {
  return arch.transposedForDecoding.reduce((n, name) => n + arch.paramShapes[name]!.reduce((a, b) => a * b, 1), 0);
}

export function formatPlan(p: MemoryPlan): string {
  const width = Math.max(...p.items.map((i) => i.what.length));
  const lines = p.items.map((i) => `  ${i.what.padEnd(width)}  ${mb(i.bytes).padStart(9)}  ${i.detail}`);
  const verdict = p.total <= p.limit ? `fits (${((100 * p.total) / p.limit).toFixed(0)}% of the engine's 4 GiB)` : "does NOT fit the engine's 4 GiB";
  lines.push(`  ${"total, with allocator slack".padEnd(width)}  ${mb(p.total).padStart(9)}  ${verdict}`);
  return `memory plan (jax-js wasm heap):\n${lines.join("\n")}\n`;
}

/** Raised before a run starts when its plan exceeds the engine's memory; the CLI prints it as one line. */
export class MemoryPlanError extends InputError {}

/**
 * What to change when a plan does not fit: when the models' weights and optimizer state alone
 * exceed the heap, nothing about the batch helps; otherwise `batchAdvice` (sizes, lengths,
 * gradient accumulation).
 */
export function adviceFor(p: MemoryPlan, batchAdvice: string): string {
  const fixed = p.items.filter((i) => / (weights|AdamW moments|gradients and update)$/.test(i.what)).reduce((n, i) => n + i.bytes, 0);
  if (SLACK * fixed > p.limit) {
    return `the weights, gradients and AdamW moments alone take ${gib(SLACK * fixed)}: full fine-tuning at this size cannot fit, whatever the batch; use a smaller model`;
  }
  return batchAdvice;
}

/**
 * Refuses a plan over the limit: one line with the estimate, its three largest parts and `advice`
 * (what to change: batch size, max_length, gradient accumulation, fewer trained parameters).
 */
export function checkPlan(p: MemoryPlan, batchAdvice: string): void {
  if (p.total <= p.limit) return;
  const advice = adviceFor(p, batchAdvice);
  if (process.env.RLHF_MEMORY_PLAN === "warn") {
    // The plan keeps a margin for fragmentation; a user who knows better may run at the edge.
    process.stderr.write(`warning: the run needs about ${gib(p.total)} of engine memory by the plan, more than jax-js's 4 GiB; running anyway (RLHF_MEMORY_PLAN=warn)\n`);
    return;
  }
  const largest = [...p.items].sort((a, b) => b.bytes - a.bytes).slice(0, 3).map((i) => `${i.what} ${gib(i.bytes)}`);
  throw new MemoryPlanError(`needs about ${gib(p.total)} of engine memory, more than jax-js's 4 GiB (${largest.join(", ")}); ${advice} (--dry-run prints the whole plan; RLHF_MEMORY_PLAN=warn runs anyway)`);
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

/** "engine memory: heap 2,997 MiB at its highest, planned 3,196 MiB": said at the end of a run. */
export function memoryReport(p: MemoryPlan): string {
  const stats = wasmMemoryStats();
  return stats ? `engine memory: heap ${mb(stats.heapBytes)} at its highest (the plan said ${mb(p.total)})` : `engine memory: not measured (the plan said ${mb(p.total)})`;
}
