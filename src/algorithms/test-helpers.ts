// Runs traced losses the way a trainer does (compiled) and reads the results back, for tests.
import type { Array } from "../engine/runtime.ts";
import { compile, fromHost, release, toHost, toNumber } from "../engine/arrays.ts";
import type { LossOutput } from "./loss.ts";

export interface HostLoss {
  loss: number;
  metrics: Record<string, number>;
}

/** Device array from nested rows or a flat list (1-D). */
export function arr(values: number[] | number[][]): Array {
  if (typeof values[0] === "number" || values.length === 0) return fromHost(values as number[], [values.length]);
  const rows = values as number[][];
  return fromHost(rows.flat(), [rows.length, rows[0]!.length]);
}

/** Compiles `fn`, calls it on `args` (released afterwards) and returns host numbers. */
export async function runLoss<Args extends unknown[]>(fn: (...args: Args) => LossOutput, ...args: Args): Promise<HostLoss> {
  const compiled = compile(fn);
  const out = compiled(...args);
  release(args);
  compiled.dispose();
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(out.metrics)) metrics[k] = await toNumber(v);
  return { loss: await toNumber(out.loss), metrics };
}

/** Compiles an array-valued traced function and reads its output. */
export async function runArray<Args extends unknown[]>(fn: (...args: Args) => Array, ...args: Args): Promise<number[]> {
  const compiled = compile(fn);
  const out = compiled(...args);
  release(args);
  compiled.dispose();
  return [...(await toHost(out))];
}

export function close(actual: number, expected: number, tol = 1e-5, what = ""): void {
  if (!(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)))) {
    throw new Error(`${what ? what + ": " : ""}${actual} is not ${expected} (±${tol})`);
  }
}

export function allClose(actual: ArrayLike<number>, expected: number[], tol = 1e-5, what = ""): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} is not ${expected.length}`);
  for (let i = 0; i < expected.length; i++) close(actual[i]!, expected[i]!, tol, `${what}[${i}]`);
}
