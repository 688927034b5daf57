// The array-ownership rule, stated once.
//
// jax-js moves an array into every operation that receives it: after `f(x)`, `x` is gone unless
// the caller passed `x.ref`. This project confines that rule to two places:
//  1. Code traced by `compile` (model forward passes, losses, training steps) may take `.ref` of a
//     value whenever it uses it more than once; extra references inside a trace are harmless, a
//     missing one fails loudly at trace time.
//  2. Outside traced code, `compile`d functions BORROW their inputs (they never consume them) and
//     the caller OWNS what they return: release it with `release`, or read it with `toHost`, which
//     releases it. `compileConsuming` functions take their inputs over instead (to free memory early).
import { jit, np, tree, type Array } from "./runtime.ts";

export type Tree = jax_tree;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type jax_tree = any;

/** A compiled function that borrows its arguments; see the ownership rule above. */
export function compile<Args extends unknown[], Out>(fn: (...args: Args) => Out): ((...args: Args) => Out) & { dispose(): void } {
  const jitted = jit(fn as never) as unknown as ((...args: unknown[]) => Out) & { dispose(): void };
  const borrowing = (...args: Args): Out => jitted(...args.map((a) => tree.ref(a as never)));
  return Object.assign(borrowing, { dispose: () => jitted.dispose() });
}

/**
 * A compiled function that CONSUMES its arguments (pass `keep(x)` for one the caller still needs).
 * Its program then frees each argument's memory after that argument's last use, where a borrowed
 * argument lives to the end: a training step that consumes the old weights and moments peaks at
 * about four times the weights instead of seven.
 */
export function compileConsuming<Args extends unknown[], Out>(fn: (...args: Args) => Out): ((...args: Args) => Out) & { dispose(): void } {
  return jit(fn as never) as unknown as ((...args: Args) => Out) & { dispose(): void };
}

/** Releases every array in a tree (params, optimizer state, outputs). */
export function release(value: Tree): void {
  tree.dispose(value);
}

/** An extra reference for code outside a trace that must hand an array on and keep using it. */
export function keep<T>(value: T): T {
  return tree.ref(value as never) as T;
}

/** Reads an array to host memory as float32 and releases it. */
export async function toHost(array: Array): Promise<Float32Array> {
  const data = await array.data();
  return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
}

/** Reads a scalar and releases it. */
export async function toNumber(array: Array): Promise<number> {
  return (await array.data())[0] as number;
}

export function fromHost(data: Float32Array | number[], shape: number[]): Array {
  return np.array(data instanceof Float32Array ? data : Float32Array.from(data)).reshape(shape);
}

export function intsFromHost(data: Int32Array | number[], shape: number[]): Array {
  const ints = data instanceof Int32Array ? data : Int32Array.from(data);
  return np.array(ints, { dtype: np.int32 }).reshape(shape);
}
