// The one way the offline trainers lay token rows out as a device batch: each row left-aligned in
// a [rows, length] grid and right-padded, positions counting its tokens from 0, padding masked out
// of attention and of every loss. SFT (lm-loss.ts, sft.ts), reward models (reward.ts) and the
// reference-based preference trainers (preference.ts: DPO, KTO) build on it. Lengths are rounded
// up to a bucket so that few shapes compile. (The on-policy trainers' rl/sequences.ts is another
// layout: prompts left-padded so that every response starts in the same column.)
import { fromHost, intsFromHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";

/** Rows are padded to a multiple of this (capped at max_length), so few shapes compile. */
export const LENGTH_BUCKET = 32;

/** The padded length of a batch whose longest row has `longest` tokens: the next bucket, at most maxLength. */
export function bucketLength(longest: number, maxLength: number): number {
  return Math.min(maxLength, Math.ceil(longest / LENGTH_BUCKET) * LENGTH_BUCKET);
}

/** Right-padded token rows as the model reads them. */
export interface PaddedRows {
  inputIds: Array; // [N, T] int32, padId after each row
  positionIds: Array; // [N, T] int32, 0.. along each row, 0 on padding
  attentionMask: Array; // [N, T] float32, 1 for real tokens
}

/** Per-token values of each row in a [rows, length] grid, `fill` after each row; refuses a row longer than length. */
function grid<T extends Int32Array | Float32Array>(rows: readonly (readonly number[])[], length: number, fill: number, Type: new (n: number) => T): T {
  const out = new Type(rows.length * length);
  if (fill !== 0) out.fill(fill);
  rows.forEach((row, r) => {
    if (row.length > length) throw new Error(`a batch row has ${row.length} tokens, more than its padded length ${length}`);
    out.set(row, r * length);
  });
  return out;
}

/** int32 [rows, length]: each row's values, then `fill`. */
export function intGrid(rows: readonly (readonly number[])[], length: number, fill = 0): Array {
  return intsFromHost(grid(rows, length, fill, Int32Array), [rows.length, length]);
}

/** float32 [rows, length]: each row's values (a mask, say), then 0. */
export function floatGrid(rows: readonly (readonly number[])[], length: number): Array {
  return fromHost(grid(rows, length, 0, Float32Array), [rows.length, length]);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Token rows right-padded to `length` with padId. */
export function padRows(rows: readonly (readonly number[])[], length: number, padId: number): PaddedRows {
  return {
    inputIds: intGrid(rows, length, padId),
    positionIds: intGrid(rows.map((r) => range(r.length)), length),
    attentionMask: floatGrid(rows.map((r) => r.map(() => 1)), length),
  };
}

/** One completion read after its prompt: a row the model reads as prompt ++ completion. */
export interface CompletionRow {
  prompt: readonly number[];
  completion: readonly number[];
}

export interface CompletionSequences extends PaddedRows {
  completionMask: Array; // [N, T] float32, 1 for completion tokens
}

/**
 * Prompt + completion rows, right-padded to a bucketed length of at most maxLength, with their
 * completion masks, and the number of real tokens. Rows must already fit maxLength.
 */
export function completionSequences(rows: readonly CompletionRow[], maxLength: number, padId: number): { sequences: CompletionSequences; tokens: number } {
  const tokens = rows.map((r) => [...r.prompt, ...r.completion]);
  const longest = Math.max(...tokens.map((t) => t.length));
  if (longest > maxLength) throw new Error(`a row has ${longest} tokens, more than max_length ${maxLength} (fit the examples first)`);
  const length = bucketLength(longest, maxLength);
  const sequences = { ...padRows(tokens, length, padId), completionMask: floatGrid(rows.map((r) => [...r.prompt.map(() => 0), ...r.completion.map(() => 1)]), length) };
  return { sequences, tokens: tokens.reduce((n, t) => n + t.length, 0) };
}
