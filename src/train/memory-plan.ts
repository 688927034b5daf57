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
// N the tokens the head scores and V the vocabulary, plus a fixed engine overhead. A LoRA step
// (frozen base, tiny gradients) keeps per token and layer 0.6 × a floats per output
// (LORA_ACTIVATION_SHARE) and 1.35 per input of an adapted module (2.9 with dropout, whose
// dropped-out copy is kept), and fragments little (LORA_SLACK). Measured live / heap, planned:
// SmolLM2-135M's shape at 2 × 256 with q_proj, v_proj 1,662 / 1,679 MiB (1,863), with dropout
// 1,728 / 1,841 (1,978), on every linear projection 1,985 / 2,088 (2,272), with dropout 2,274 /
// 2,391 (2,771); Qwen2.5-0.5B's at 1 × 128 2,438 / 2,445, at 2 × 128 2,971 / 2,981, at 2 × 256
// (head blocks of 2²³ logits) 3,845 / 3,888 (a whole DPO run there runs out of memory: refused, at
// 4,191 planned). Full fine-tuning's fragmentation adds
// 9–17% (`SLACK`): SmolLM2-135M's shape measured 2,668 MiB live at the peak and a 2,997 MiB heap at
// 1 × 256 (planned 3,164), 3,647 and 3,989 at 1 × 512 (planned 4,264: refused, at 97% of the
// limit); GPT-2 124M's 2,780 and 3,247 at 1 × 512 (planned 3,430), all measured before layers.ts linear read its
// weight whole (full fine-tuning now peaks some 400 MiB lower at SmolLM2's shape: planned with room to
// spare). RLHF_MEMORY_PLAN=warn turns a refusal into a warning.
import { wasmMemoryStats } from "../engine/runtime.ts";
import { InputError } from "../io/errors.ts";
import type { Architecture } from "../models/architecture.ts";
import { HEAD_BLOCK_VALUES } from "../models/lm-head.ts";
import { loraWeightNames } from "../models/layers.ts";
import { adapterShapes, targetedModules, type LoraConfig } from "../models/lora.ts";

/** jax-js's wasm memory: one 32-bit address space. */
export const ENGINE_LIMIT_BYTES = 2 ** 32;
/** Allocator slack: size classes and free blocks that do not fit the next request. */
const SLACK = 1.15;
/**
 * A LoRA run's slack: without weight-sized gradients, moments and new weights written every step,
 * its heap stays within 7% of its live bytes in a training step (measured 1.00–1.07 on SmolLM2's and
 * Qwen2.5's shapes); a whole LoRA DPO run at Qwen2.5-0.5B's shape, 2 × 224, reached 1.10 of its items.
 */
const LORA_SLACK = 1.1;
/** Bytes per float32. */
export const FLOAT_BYTES = 4;
/** Floats per attention score kept for the backward pass (scores and probabilities). */
const TRAIN_FLOATS_PER_SCORE = 2;
/** Gradients, clipped gradients and the update's new weights, as a share of the trainable bytes. */
const UPDATE_SHARE = 0.9;
/** Floats a LoRA path keeps per token and rank for its backward pass (x·Aᵀ, and its gradient). */
const LORA_FLOATS_PER_RANK = 2;
/** A LoRA pass's activations relative to full fine-tuning's (measured: see the top). */
const LORA_ACTIVATION_SHARE = 0.6;
/** Floats kept per token and input of an adapted module (its input for A's gradient), and with dropout (the dropped-out copy too). */
const LORA_FLOATS_PER_INPUT = 1.35;
const LORA_DROPOUT_FLOATS_PER_INPUT = 2.9;
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
  return parameterItems(name, shape.params, trained);
}

function parameterItems(name: string, params: number, trained: boolean, detail = `${count(params)} parameters`): MemoryItem[] {
  const bytes = params * FLOAT_BYTES;
  const items: MemoryItem[] = [{ what: `${name} weights`, bytes, detail }];
  if (trained) {
    items.push({ what: `${name} AdamW moments`, bytes: 2 * bytes, detail: "two per parameter" });
    items.push({ what: `${name} gradients and update`, bytes: UPDATE_SHARE * bytes, detail: "while the step writes the new weights" });
  }
  return items;
}

/** The numbers of a LoRA adapter (models/lora.ts) that decide its memory. */
export interface AdapterShape {
  /** Trained parameters: every targeted module's A and B, and the modules_to_save. */
  params: number;
  /** Σ of the input widths of one layer's targeted modules (kept for A's gradients; dropout copies them). */
  layerInputs: number;
  /** Σ of the low-rank widths (r per targeted module) of one layer. */
  layerRanks: number;
  /** Parameters of the targeted matrices: what a merged copy of them (for decoding) holds. */
  targetedParams: number;
  /** Whether training passes drop out the adapters' inputs (lora_dropout, unless the trainer disables it). */
  dropout: boolean;
}

export function adapterShape(arch: Architecture, config: LoraConfig, dropout: boolean): AdapterShape {
  const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
  const shapes = adapterShapes(arch, config);
  const modules = targetedModules(arch, config);
  const layer0 = modules.filter((m) => /\.0\./.test(m));
  return {
    params: Object.values(shapes).reduce((n, s) => n + size(s), 0),
    layerInputs: layer0.reduce((n, m) => n + shapes[loraWeightNames(m).a]![1]!, 0),
    layerRanks: layer0.length * config.r,
    targetedParams: modules.reduce((n, m) => n + size(arch.paramShapes[`${m}.weight`]!), 0),
    dropout: dropout && config.lora_dropout > 0,
  };
}

/**
 * What a model holds while it is trained: its weights with AdamW's moments and the step's
 * gradients, or with `adapter` its frozen weights (held once: `sharedBy` names what else reads
 * them) and the adapter's weights, moments and gradients.
 */
export function trainedModelItems(name: string, shape: ModelShape, adapter?: AdapterShape, sharedBy?: string): MemoryItem[] {
  if (!adapter) return weightItems(name, shape, true);
  return [...parameterItems(`${name} base`, shape.params, false, `${count(shape.params)} parameters, frozen${sharedBy ? ` (also ${sharedBy})` : ""}`), ...adapterItems(name, adapter)];
}

/** A LoRA adapter's weights, AdamW moments and gradients (its base counted elsewhere). */
export function adapterItems(name: string, adapter: AdapterShape): MemoryItem[] {
  return parameterItems(`${name} adapter`, adapter.params, true, `${count(adapter.params)} parameters (LoRA)`);
}

function headBytes(tokens: number, vocab: number, budget: number): number {
  return 2 * FLOAT_BYTES * Math.min(tokens * vocab, budget);
}

/**
 * Activations of one training pass (forward + backward) through a model; with `adapter` (LoRA),
 * all of them at once, the adapted modules' inputs and the adapters' low-rank activations.
 */
export function trainPassItems(name: string, shape: ModelShape, pass: PassShape, headBudget = HEAD_BLOCK_VALUES, adapter?: AdapterShape): MemoryItem[] {
  const tokens = pass.rows * pass.length;
  const perOutput = shape.trainFloatsPerOutput * (adapter ? LORA_ACTIVATION_SHARE : 1);
  const items: MemoryItem[] = [
    { what: `${name} activations`, bytes: FLOAT_BYTES * tokens * shape.layers * perOutput * shape.layerOutputs, detail: `${shape.layers} layers × ${pass.rows} × ${pass.length} tokens` },
    { what: `${name} attention scores`, bytes: FLOAT_BYTES * TRAIN_FLOATS_PER_SCORE * pass.rows * shape.heads * pass.length ** 2 * shape.layers, detail: `${shape.heads} heads × ${pass.length}² per row and layer` },
  ];
  if (adapter) {
    const perToken = LORA_FLOATS_PER_RANK * adapter.layerRanks + (adapter.dropout ? LORA_DROPOUT_FLOATS_PER_INPUT : LORA_FLOATS_PER_INPUT) * adapter.layerInputs;
    const detail = adapter.dropout ? "adapted inputs (dropped out) and low-rank activations" : "adapted inputs and low-rank activations";
    items.push({ what: `${name} adapter activations`, bytes: FLOAT_BYTES * tokens * shape.layers * perToken, detail });
  }
  if (pass.headTokens > 0) {
    items.push({ what: `${name} LM head`, bytes: headBytes(pass.headTokens, shape.vocab, headBudget), detail: `${count(pass.headTokens)} tokens × ${count(shape.vocab)} vocabulary, in blocks of ≤ ${count(headBudget)} logits` });
  }
  return items;
}

/** A forward pass without gradients (scoring, evaluation): a layer's temporaries and the head's block. */
export function inferencePassItems(name: string, shape: ModelShape, pass: PassShape, headBudget = HEAD_BLOCK_VALUES): MemoryItem[] {
  const tokens = pass.rows * pass.length;
  const bytes =
    FLOAT_BYTES * tokens * INFERENCE_FLOATS_PER_OUTPUT * shape.layerOutputs +
    FLOAT_BYTES * TRAIN_FLOATS_PER_SCORE * pass.rows * shape.heads * pass.length ** 2 +
    (pass.headTokens > 0 ? headBytes(pass.headTokens, shape.vocab, headBudget) / 2 : 0);
  return [{ what: `${name} forward pass`, bytes, detail: `${pass.rows} × ${pass.length} tokens, no gradients` }];
}

/** KV-cached sampling of `rows` sequences of up to `length` tokens (cache written by blending: two copies). */
export function generationItems(name: string, shape: ModelShape, rows: number, length: number, transposedCopy: number): MemoryItem[] {
  const cache = 2 * 2 * FLOAT_BYTES * shape.layers * rows * length * shape.kvHeads * shape.headDim;
  const items: MemoryItem[] = [{ what: `${name} KV cache`, bytes: cache, detail: `${rows} sequences × ${length} positions` }];
  if (transposedCopy > 0) items.push({ what: `${name} decoding weights`, bytes: FLOAT_BYTES * transposedCopy, detail: "transposed copies for decode steps" });
  return items;
}

/**
 * The LM head's block sizes a run may use, largest first: a smaller block holds fewer logits at
 * once (a quarter of the default: 64 MiB of logits and 64 of their gradient) for a few more passes
 * over the head's weight. An eighth did not help: LoRA DPO at Qwen2.5-0.5B's shape, 2 × 224, ran
 * in a 3,907 MiB heap with quarter blocks and ran out of memory with eighths.
 */
export const HEAD_BUDGETS = [HEAD_BLOCK_VALUES, HEAD_BLOCK_VALUES / 2, HEAD_BLOCK_VALUES / 4] as const;

/** A plan this close to the limit gets a smaller head block when one exists: the plan's margin for error is gone. */
const HEAD_BLOCK_ROOM = 0.95;

/** How a run lays out a training pass: the LM head's block size, and whether a batch's rows are differentiated in parts (HeadLoss.rowValues). */
export interface PassLayout {
  headBudget: number;
  rowParts: boolean;
}

/**
 * The plan of a run at the first layout that fits with some room, and that layout: the batch
 * whole at each head block size, largest first (the default whenever anything fits, so such a
 * run plans and trains as before), then, when its loss allows it (`canPartRows`: DPO, KTO), its
 * rows in parts at each block size; the last layout's plan when none fits. Whole batches come
 * first: parts cost one more forward pass over the later parts, smaller head blocks a few more
 * passes over the head's weight.
 */
export function planLayout(planFor: (layout: PassLayout) => MemoryPlan, canPartRows = false): { memory: MemoryPlan; layout: PassLayout } {
  const layouts = [false, ...(canPartRows ? [true] : [])].flatMap((rowParts) => HEAD_BUDGETS.map((headBudget) => ({ headBudget, rowParts })));
  for (const [i, layout] of layouts.entries()) {
    const memory = planFor(layout);
    if (memory.total <= HEAD_BLOCK_ROOM * memory.limit || i === layouts.length - 1) return { memory, layout };
  }
  throw new Error("unreachable");
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

/** The plan of a run holding `items`; `lora`: what it trains is LoRA adapters only (less fragmentation: LORA_SLACK). */
export function plan(items: MemoryItem[], lora = false): MemoryPlan {
  const all = [...items, { what: "engine overhead", bytes: ENGINE_OVERHEAD_BYTES, detail: "batches, masks, tables, small buffers" }];
  return { items: all, total: (lora ? LORA_SLACK : SLACK) * all.reduce((s, i) => s + i.bytes, 0), limit: ENGINE_LIMIT_BYTES };
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
 * gradient accumulation). `lora`: the same run's plan with --use_peft, suggested when it fits.
 */
export function adviceFor(p: MemoryPlan, batchAdvice: string, lora?: MemoryPlan): string {
  const fixed = p.items.filter((i) => / (weights|AdamW moments|gradients and update)$/.test(i.what)).reduce((n, i) => n + i.bytes, 0);
  const peft = lora && lora.total <= lora.limit ? `--use_peft (a LoRA adapter on the frozen model: about ${gib(lora.total)} by the plan)` : null;
  if (SLACK * fixed > p.limit) {
    return `the weights, gradients and AdamW moments alone take ${gib(SLACK * fixed)}: full fine-tuning at this size cannot fit, whatever the batch; ${peft ? `train with ${peft}` : "use a smaller model"}`;
  }
  return peft ? `${batchAdvice}; or train with ${peft}` : batchAdvice;
}

/**
 * Refuses a plan over the limit: one line with the estimate, its three largest parts and `advice`
 * (what to change: batch size, max_length, gradient accumulation, fewer trained parameters: `lora`
 * is the run's plan with --use_peft, suggested when it fits).
 */
export function checkPlan(p: MemoryPlan, batchAdvice: string, lora?: MemoryPlan): void {
  if (p.total <= p.limit) return;
  const advice = adviceFor(p, batchAdvice, lora);
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
