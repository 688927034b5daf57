// The ggml tensor types a GGUF export writes (ggml.h's ggml_type ids, ggml-common.h's block layouts):
// f32, f16 (IEEE half rounded to nearest even, as F16C's _cvtss_sh and numpy's astype do: the
// f32ToF16Bits that safetensors.ts writes fp16 with) and q8_0 (blocks of 32 along a row: one f16
// scale d = max|x| / 127, then 32 int8 round(x / d)).
import { InputError } from "./errors.ts";
import { f32ToF16Bits } from "./safetensors.ts";

export const GGML_TYPES = {
  f32: { id: 0, blockSize: 1, blockBytes: 4 },
  f16: { id: 1, blockSize: 1, blockBytes: 2 },
  q8_0: { id: 8, blockSize: 32, blockBytes: 34 },
} as const;

export type GgmlType = keyof typeof GGML_TYPES;

/** Bytes of a tensor of `shape` (row-major, last axis contiguous) stored as `type`. */
export function ggmlBytes(shape: readonly number[], type: GgmlType): number {
  const { blockSize, blockBytes } = GGML_TYPES[type];
  const rowLength = shape[shape.length - 1] ?? 1;
  if (rowLength % blockSize !== 0) throw new InputError(`a row of ${rowLength} values cannot be stored as ${type} (blocks of ${blockSize})`);
  return (shape.reduce((a, b) => a * b, 1) / blockSize) * blockBytes;
}

/** Whether rows of `rowLength` values fit `type`'s blocks. */
export function fitsBlocks(rowLength: number, type: GgmlType): boolean {
  return rowLength % GGML_TYPES[type].blockSize === 0;
}

/** `values` (whole rows of the tensor) encoded as `type`, little-endian as ggml reads them. */
export function encodeGgml(values: Float32Array, type: GgmlType): Uint8Array {
  if (type === "f32") return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint8Array(ggmlBytes([values.length], type));
  const view = new DataView(out.buffer);
  if (type === "f16") {
    for (let i = 0; i < values.length; i++) view.setUint16(2 * i, f32ToF16Bits(values[i]!), true);
    return out;
  }
  // quantize_row_q8_0_ref, in float32 arithmetic as ggml does it.
  for (let block = 0; block * 32 < values.length; block++) {
    const xs = values.subarray(block * 32, block * 32 + 32);
    let amax = 0;
    for (const x of xs) amax = Math.max(amax, Math.abs(x));
    const d = Math.fround(amax / 127);
    const inv = d === 0 ? 0 : Math.fround(1 / d);
    const at = block * 34;
    view.setUint16(at, f32ToF16Bits(d), true);
    for (let j = 0; j < 32; j++) view.setInt8(at + 2 + j, roundHalfAway(Math.fround(xs[j]! * inv)));
  }
  return out;
}

/** C's roundf: halves away from zero (Math.round rounds -2.5 to -2). */
function roundHalfAway(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}
