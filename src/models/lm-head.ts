// The language-model head as every loss reads it: log p(target) at chosen positions (and, for
// logging, the entropy there), from hidden states h [N, D] and the head matrix W [V, D], with
// logits z = h·Wᵀ / temperature. Traced code.
//
// The logits are the largest tensor of a step at real vocabularies (a Qwen2.5 batch of 8 × 1,024
// tokens has 1.2 G of them), so they are computed in blocks of at most `budget` values and never
// whole. Autodiff through the head would keep every block's logits for the backward pass, so
// training differentiates the head by hand (`headBackward`): the forward keeps only the per-token
// log-normaliser, and the backward recomputes logits a vocabulary slice at a time, each slice
// giving its rows of dW outright (no [V, D] accumulator). When every logit fits in one block, the
// forward's logits are kept instead of recomputed.
import { np, type Array } from "../engine/runtime.ts";

/** Most logits (float32 values) that exist at once: 256 MiB. */
export const HEAD_BLOCK_VALUES = 2 ** 26;

export interface HeadOptions {
  /** Logits are divided by this (sampling temperature); 1 = plain. */
  temperature?: number;
  /** Most logits per block; HEAD_BLOCK_VALUES unless the memory plan says otherwise. */
  budget?: number;
}

export interface HeadForward {
  logprobs: Array; // [N]
  /** log Σ exp z per token, [N, 1]: what the backward needs to rebuild softmax from recomputed logits. */
  logNormalizer: Array;
  /** The logits [N, V], only when one block held them all and `keepLogits` was asked. */
  logits?: Array;
}

/** Tokens per block for a vocabulary: at least one. */
export function headBlockTokens(vocab: number, budget = HEAD_BLOCK_VALUES): number {
  return Math.max(1, Math.floor(budget / vocab));
}

/** [start, end) ranges of `size` elements in pieces of at most `step`. */
function blocks(size: number, step: number): [number, number][] {
  const out: [number, number][] = [];
  for (let start = 0; start < size; start += step) out.push([start, Math.min(size, start + step)]);
  return out;
}

/**
 * Vocabulary rows [start, end) split so that all but the last piece are a multiple of 4 long:
 * jax-js tiles `h·Wᵀ` only when W's row count is a multiple of 4, and at GPT-2's 50,257 the
 * untiled kernel ran the head 4.5× slower (a decode step's logits: 56 → 13 ms as two products).
 */
function alignedPieces(start: number, end: number): [number, number][] {
  const aligned = start + (end - start) - ((end - start) % 4);
  return aligned === end || aligned === start ? [[start, end]] : [[start, aligned], [aligned, end]];
}

/** h·Wᵀ for hidden [..., D] and W [V, D] → [..., V], in vocabulary pieces jax-js tiles (alignedPieces). */
export function headLogits(hidden: Array, weight: Array): Array {
  const pieces = alignedPieces(0, weight.shape[0]!);
  if (pieces.length === 1) return np.matmul(hidden, weight.transpose());
  const parts = pieces.map(([s, e]) => np.matmul(hidden.ref, weight.ref.slice([s, e]).transpose()));
  hidden.dispose();
  weight.dispose();
  return np.concatenate(parts, -1);
}

function scaledLogits(hidden: Array, weight: Array, temperature: number): Array {
  const z = headLogits(hidden, weight);
  return temperature === 1 ? z : z.mul(1 / temperature);
}

/** dzᵀ·h → [V, D] (the head matrix's gradient), in row pieces jax-js tiles (alignedPieces). */
function weightGradient(dz: Array, hidden: Array): Array {
  const pieces = alignedPieces(0, dz.shape[1]!);
  if (pieces.length === 1) return np.matmul(dz.transpose(), hidden);
  const parts = pieces.map(([s, e]) => np.matmul(dz.ref.slice([], [s, e]).transpose(), hidden.ref));
  dz.dispose();
  hidden.dispose();
  return np.concatenate(parts, 0);
}

/** 1 where column v of a [N, V] block (columns from `first`) is row n's target, as a lazy mask. */
function isTarget(targets: Array, rows: number, first: number, columns: number): Array {
  return np.equal(np.arange(first, first + columns).reshape([1, columns]), targets.reshape([rows, 1])); // [N, V]
}

/** log Σ_v exp z[n, v] → [N, 1], shifted by the row maximum so exp never overflows. */
function logSumExp(z: Array): Array {
  const max = np.max(z.ref, -1, { keepdims: true }); // [N, 1]
  return np.log(np.sum(np.exp(z.sub(max.ref)), -1, { keepdims: true })).add(max);
}

function blockForward(z: Array, targets: Array, withEntropy: boolean): { logprobs: Array; logNormalizer: Array; entropy?: Array } {
  const [n, v] = z.shape as [number, number];
  const lse = logSumExp(z.ref); // [N, 1]
  const picked = np.sum(np.where(isTarget(targets, n, 0, v), z.ref, 0), -1); // [N]
  const logprobs = picked.sub(lse.ref.reshape([n]));
  if (!withEntropy) {
    z.dispose();
    return { logprobs, logNormalizer: lse };
  }
  // H = lse − Σ p·z with p = exp(z − lse).
  const expected = np.sum(np.exp(z.ref.sub(lse.ref)).mul(z), -1); // [N]
  return { logprobs, logNormalizer: lse.ref, entropy: lse.reshape([n]).sub(expected) };
}

/**
 * log p(target) per token, and the log-normaliser the backward needs. `keepLogits` keeps the
 * logits when a single block holds them (the backward then reuses them).
 */
export function headForward(hidden: Array, weight: Array, targets: Array, options: HeadOptions & { keepLogits?: boolean } = {}): HeadForward {
  const temperature = options.temperature ?? 1;
  const [n] = hidden.shape as [number, number];
  const step = headBlockTokens(weight.shape[0]!, options.budget);
  if (n <= step) {
    const z = scaledLogits(hidden, weight, temperature); // [N, V]
    const out = blockForward(options.keepLogits ? z.ref : z, targets, false);
    return options.keepLogits ? { ...out, logits: z } : out;
  }
  const parts = blocks(n, step).map(([s, e]) => blockForward(scaledLogits(hidden.ref.slice([s, e]), weight.ref, temperature), targets.ref.slice([s, e]), false));
  hidden.dispose();
  weight.dispose();
  targets.dispose();
  return { logprobs: np.concatenate(parts.map((p) => p.logprobs)), logNormalizer: np.concatenate(parts.map((p) => p.logNormalizer)) };
}

/** log p(target) and the entropy of the next-token distribution per token, for scoring (no gradient). */
export function headLogprobsAndEntropy(hidden: Array, weight: Array, targets: Array, options: HeadOptions = {}): { logprobs: Array; entropy: Array } {
  const temperature = options.temperature ?? 1;
  const [n] = hidden.shape as [number, number];
  const step = headBlockTokens(weight.shape[0]!, options.budget);
  const parts = blocks(n, step).map(([s, e]) => {
    const h = n <= step ? hidden.ref : hidden.ref.slice([s, e]);
    const t = n <= step ? targets.ref : targets.ref.slice([s, e]);
    const out = blockForward(scaledLogits(h, weight.ref, temperature), t, true);
    out.logNormalizer.dispose();
    return out;
  });
  hidden.dispose();
  weight.dispose();
  targets.dispose();
  const join = (xs: Array[]) => (xs.length === 1 ? xs[0]! : np.concatenate(xs));
  return { logprobs: join(parts.map((p) => p.logprobs)), entropy: join(parts.map((p) => p.entropy!)) };
}

export interface HeadGradients {
  hidden: Array; // [N, D]
  /** [V, D]; absent when `weightGrad` is false (a frozen head). */
  weight?: Array;
}

/**
 * Gradients of Σ_n g[n]·log p(target_n) with respect to h and W, given the forward's
 * log-normaliser (and logits, when it kept them). dz = g·(onehot(target) − softmax(z)) / temperature,
 * dh = dz·W, dW = dzᵀ·h.
 */
export function headBackward(
  hidden: Array,
  weight: Array,
  targets: Array,
  forward: Pick<HeadForward, "logNormalizer" | "logits">,
  dLogprobs: Array,
  options: HeadOptions & { weightGrad: boolean },
): HeadGradients {
  const temperature = options.temperature ?? 1;
  const [n] = hidden.shape as [number, number];
  const vocab = weight.shape[0]!;
  const g = dLogprobs.reshape([n, 1]).mul(1 / temperature); // [N, 1]
  const lse = forward.logNormalizer; // [N, 1]
  const logitGrad = (z: Array, first: number) => {
    const columns = z.shape[1]!;
    const softmax = np.exp(z.sub(lse.ref));
    return np.where(isTarget(targets.ref, n, first, columns), softmax.ref.neg().add(1), softmax.neg()).mul(g.ref); // [N, Vb]
  };
  if (forward.logits) {
    const dz = logitGrad(forward.logits, 0); // [N, V]
    const dWeight = options.weightGrad ? weightGradient(dz.ref, hidden) : (hidden.dispose(), undefined);
    const dHidden = np.matmul(dz, weight);
    release(targets, g, lse);
    return dWeight ? { hidden: dHidden, weight: dWeight } : { hidden: dHidden };
  }
  // Vocabulary slices: each recomputes its logits for every token, and yields its own rows of dW.
  // Slices a multiple of 4 long, so each is a product jax-js tiles (see alignedPieces).
  const step = Math.max(4, Math.floor((options.budget ?? HEAD_BLOCK_VALUES) / n / 4) * 4);
  const weightRows: Array[] = [];
  let dHidden: Array | null = null;
  for (const [s, e] of blocks(vocab, step)) {
    const w = weight.ref.slice([s, e]); // [Vb, D]
    const dz = logitGrad(scaledLogits(hidden.ref, w.ref, temperature), s); // [N, Vb]
    if (options.weightGrad) weightRows.push(weightGradient(dz.ref, hidden.ref));
    const part = np.matmul(dz, w); // [N, D]
    dHidden = dHidden === null ? part : dHidden.add(part);
  }
  release(hidden, weight, targets, g, lse);
  const dWeight = options.weightGrad ? (weightRows.length === 1 ? weightRows[0]! : np.concatenate(weightRows)) : undefined;
  return dWeight ? { hidden: dHidden!, weight: dWeight } : { hidden: dHidden! };
}

function release(...arrays: Array[]): void {
  for (const a of arrays) a.dispose();
}
