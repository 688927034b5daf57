// GGUF v3, the file format of llama.cpp (ggml-org/ggml docs/gguf.md): "GGUF", version 3, tensor and
// metadata counts, the metadata key-value pairs, one info per tensor (name, dims innermost first,
// ggml type, offset into the data section), then the tensors' data, each aligned to 32 bytes.
// Tensor data is produced and written one tensor at a time, so a large model never sits in one
// buffer; the file goes through io/atomic.ts like every other file the project writes.
import { writeFileAtomic } from "./atomic.ts";
import { encodeGgml, ggmlBytes, GGML_TYPES, type GgmlType } from "./ggml-types.ts";

const MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const VERSION = 3;
export const GGUF_ALIGNMENT = 32;

const VALUE_TYPES = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
type ScalarType = Exclude<keyof typeof VALUE_TYPES, "array">;

/** One metadata value with its GGUF type (a JS number alone cannot say u32 from f32). */
export type GgufValue =
  | { type: "string"; value: string }
  | { type: "bool"; value: boolean }
  | { type: Exclude<ScalarType, "string" | "bool">; value: number }
  | { type: "array"; itemType: "string"; values: readonly string[] }
  | { type: "array"; itemType: Exclude<ScalarType, "string" | "bool">; values: ArrayLike<number> };

export const gguf = {
  string: (value: string): GgufValue => ({ type: "string", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  u32: (value: number): GgufValue => ({ type: "u32", value }),
  i32: (value: number): GgufValue => ({ type: "i32", value }),
  f32: (value: number): GgufValue => ({ type: "f32", value }),
  strings: (values: readonly string[]): GgufValue => ({ type: "array", itemType: "string", values }),
  i32s: (values: ArrayLike<number>): GgufValue => ({ type: "array", itemType: "i32", values }),
  f32s: (values: ArrayLike<number>): GgufValue => ({ type: "array", itemType: "f32", values }),
};

/** A tensor to write: its name, shape in PyTorch's order (outermost first), type, and its float32 values, computed when written. */
export interface GgufTensor {
  name: string;
  shape: readonly number[];
  type: GgmlType;
  values: () => Float32Array | Promise<Float32Array>;
}

/** A little-endian byte builder for the header. */
class Bytes {
  #buf = new Uint8Array(1 << 16);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #room(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(2 * this.#buf.length, this.length + n));
    grown.set(this.#buf.subarray(0, this.length));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }

  scalar(type: ScalarType, v: number | boolean | string): void {
    if (type === "string") return this.string(v as string);
    const n = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 }[type];
    this.#room(n);
    const at = this.length;
    const x = v as number;
    const view = this.#view;
    ({
      u8: () => view.setUint8(at, x), i8: () => view.setInt8(at, x), bool: () => view.setUint8(at, v ? 1 : 0),
      u16: () => view.setUint16(at, x, true), i16: () => view.setInt16(at, x, true),
      u32: () => view.setUint32(at, x, true), i32: () => view.setInt32(at, x, true), f32: () => view.setFloat32(at, x, true),
      u64: () => view.setBigUint64(at, BigInt(x), true), i64: () => view.setBigInt64(at, BigInt(x), true), f64: () => view.setFloat64(at, x, true),
    })[type]();
    this.length += n;
  }

  string(s: string): void {
    const bytes = new TextEncoder().encode(s);
    this.scalar("u64", bytes.length);
    this.#room(bytes.length);
    this.#buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  value(v: GgufValue): void {
    if (v.type !== "array") return this.scalar(v.type, v.value);
    this.scalar("u32", VALUE_TYPES[v.itemType]);
    this.scalar("u64", v.values.length);
    for (let i = 0; i < v.values.length; i++) this.scalar(v.itemType, v.values[i]!);
  }

  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.#room(pad);
    this.#buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

function padding(length: number): Uint8Array {
  return new Uint8Array((GGUF_ALIGNMENT - (length % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT);
}

/** The header: magic, version, counts, metadata and tensor infos, padded to the data section's alignment. */
export function ggufHeader(metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): Uint8Array {
  const out = new Bytes();
  out.scalar("u32", MAGIC);
  out.scalar("u32", VERSION);
  out.scalar("u64", tensors.length);
  out.scalar("u64", metadata.size);
  for (const [key, value] of metadata) {
    out.string(key);
    out.scalar("u32", VALUE_TYPES[value.type]);
    out.value(value);
  }
  let offset = 0;
  for (const t of tensors) {
    out.string(t.name);
    out.scalar("u32", t.shape.length);
    for (const dim of [...t.shape].reverse()) out.scalar("u64", dim); // ggml's ne[0] is the contiguous axis
    out.scalar("u32", GGML_TYPES[t.type].id);
    out.scalar("u64", offset);
    const size = ggmlBytes(t.shape, t.type);
    offset += size + padding(size).length;
  }
  out.padTo(GGUF_ALIGNMENT);
  return out.bytes();
}

async function* ggufChunks(metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): AsyncGenerator<Uint8Array> {
  yield ggufHeader(metadata, tensors);
  for (const t of tensors) {
    const values = await t.values();
    const expected = t.shape.reduce((a, b) => a * b, 1);
    if (values.length !== expected) throw new Error(`gguf: tensor ${t.name} has ${values.length} values for shape [${t.shape.join(", ")}]`);
    const data = encodeGgml(values, t.type);
    yield data;
    yield padding(data.length);
  }
}

/** Writes a GGUF v3 file (atomically), producing each tensor's data only when its turn comes. */
export async function writeGguf(path: string, metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): Promise<void> {
  await writeFileAtomic(path, ggufChunks(metadata, tensors));
}
