// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`,
// then the raw tensor bytes, offsets relative to the end of the header.
// Everything is float32 in memory; F16/BF16/F64 files are converted on read.
import { open, readFile, type FileHandle } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { writeFileAtomic } from "./atomic.ts";
import { CheckpointError } from "./errors.ts";
import { numel, type TensorMap } from "./tensors.ts";

export type SafetensorsDtype = "F32" | "F16" | "BF16";

export interface SafetensorsFile {
  tensors: TensorMap;
  metadata: Record<string, string>;
}

export interface SafetensorsWriteOptions {
  /** Storage dtype; F32 (lossless) unless asked. */
  dtype?: SafetensorsDtype;
  /** Written as `__metadata__`; transformers wants `{format: "pt"}`. */
  metadata?: Record<string, string>;
}

// Float views below reinterpret bytes in host order, and the format is little-endian.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("safetensors.ts assumes a little-endian host");
}

const BYTES_PER_ELEMENT: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
// Listed so that an integer/bool/fp8 tensor gets "unsupported dtype" rather than "unknown dtype":
// none of the architectures we load store weights in them.
const UNSUPPORTED_DTYPES = new Set(["BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"]);
const MAX_HEADER_BYTES = 100_000_000; // the reference implementation refuses larger headers too

// ---------------------------------------------------------------------------------------------
// Scalar conversions (exported for tests and for anyone who needs one value)

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

export function bf16BitsToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** Round-to-nearest-even; NaN stays a (quiet) NaN instead of rounding into infinity. */
export function f32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Round-to-nearest-even, overflow to ±Infinity, gradual underflow to f16 subnormals. */
export function f32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: rounds to ±0
    mant |= 0x800000; // restore the implicit leading 1
    const shift = 14 - e; // f16 subnormal units are 2^-24
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is exactly right (up to Infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

let f16Table: Float32Array | undefined; // all 65536 halves, built on first use: decoding is then a lookup

// `bytes` must own its buffer from offset 0 (fresh reads and slices do), so typed views are aligned.
function decode(dtype: string, bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength / BYTES_PER_ELEMENT[dtype]!;
  switch (dtype) {
    case "F32":
      return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    case "F64":
      return Float32Array.from(new Float64Array(bytes.buffer, bytes.byteOffset, n));
    case "BF16": {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = src[i]! << 16;
      return new Float32Array(out.buffer);
    }
    case "F16": {
      if (!f16Table) {
        f16Table = new Float32Array(65536);
        for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
      }
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = f16Table[src[i]!]!;
      return out;
    }
    default:
      throw new Error(`unreachable dtype ${dtype}`);
  }
}

function encodeInto(dtype: SafetensorsDtype, src: Float32Array, dst: Uint8Array): void {
  if (dtype === "F32") {
    dst.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    return;
  }
  const convert = dtype === "F16" ? f32ToF16Bits : f32ToBf16Bits;
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  for (let i = 0; i < src.length; i++) view.setUint16(2 * i, convert(src[i]!), true);
}

// ---------------------------------------------------------------------------------------------
// Header

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Validates the JSON header against the number of data bytes the file actually has. */
function parseHeader(json: Uint8Array, fileBytes: number, source: string): { entries: Entry[]; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (err) {
    throw new CheckpointError(`${source}: bad safetensors header, not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(header)) throw new CheckpointError(`${source}: bad safetensors header, expected a JSON object`);

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isObject(value) || !Object.values(value).every((v) => typeof v === "string")) {
        throw new CheckpointError(`${source}: bad safetensors header, __metadata__ must map strings to strings`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const where = `${source}: tensor "${name}"`;
    if (!isObject(value)) throw new CheckpointError(`${where}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = value;
    if (typeof dtype !== "string") throw new CheckpointError(`${where}: missing dtype`);
    if (UNSUPPORTED_DTYPES.has(dtype)) {
      throw new CheckpointError(`${where}: dtype ${dtype} is not supported (only F32, F16, BF16 and F64 weights can be read)`);
    }
    if (!(dtype in BYTES_PER_ELEMENT)) throw new CheckpointError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isCount)) throw new CheckpointError(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      throw new CheckpointError(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const needed = numel(shape) * BYTES_PER_ELEMENT[dtype]!;
    if (end - begin !== needed) {
      throw new CheckpointError(`${where}: shape [${shape.join(", ")}] of ${dtype} needs ${needed} bytes, data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }

  const dataStart = 8 + json.byteLength;
  const dataEnd = entries.reduce((m, e) => Math.max(m, e.end), 0);
  if (dataStart + dataEnd > fileBytes) {
    throw new CheckpointError(`${source}: file is truncated: its header describes ${dataStart + dataEnd} bytes, the file has ${fileBytes}`);
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1]!, sorted[i]!];
    if (b.begin < a.end) {
      throw new CheckpointError(`${source}: tensors "${a.name}" [${a.begin}, ${a.end}) and "${b.name}" [${b.begin}, ${b.end}) overlap`);
    }
  }
  return { entries, metadata };
}

function headerLength(prefix: Uint8Array, fileBytes: number, source: string): number {
  if (fileBytes < 8) throw new CheckpointError(`${source}: file is truncated: ${fileBytes} bytes, not even the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new CheckpointError(`${source}: header length ${n} is implausible (limit ${MAX_HEADER_BYTES}); not a safetensors file?`);
  if (8 + Number(n) > fileBytes) {
    throw new CheckpointError(`${source}: file is truncated: header says ${n} bytes of JSON, the file has ${fileBytes - 8} after the length prefix`);
  }
  return Number(n);
}

// ---------------------------------------------------------------------------------------------
// Reading

async function openExisting(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new CheckpointError(`safetensors file not found: ${path}`);
    throw err;
  }
}

async function readAt(fh: FileHandle, length: number, position: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new CheckpointError(`unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
  return buf;
}

/** Reads one .safetensors file tensor by tensor (the whole file is never in memory twice). */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const fh = await openExisting(path);
  try {
    const size = (await fh.stat()).size;
    const n = headerLength(await readAt(fh, Math.min(8, size), 0), size, path);
    const { entries, metadata } = parseHeader(await readAt(fh, n, 8), size, path);
    const tensors: TensorMap = new Map();
    for (const e of entries) {
      const bytes = await readAt(fh, e.end - e.begin, 8 + n + e.begin);
      tensors.set(e.name, { shape: e.shape, data: decode(e.dtype, bytes) });
    }
    return { tensors, metadata };
  } finally {
    await fh.close();
  }
}

/** Parses safetensors bytes already in memory; `source` names them in errors. */
export function deserializeSafetensors(bytes: Uint8Array, source = "<buffer>"): SafetensorsFile {
  const n = headerLength(bytes, bytes.byteLength, source);
  const { entries, metadata } = parseHeader(bytes.subarray(8, 8 + n), bytes.byteLength, source);
  const tensors: TensorMap = new Map();
  for (const e of entries) {
    // new Uint8Array(view) copies into a fresh aligned buffer (a Node Buffer's slice() would alias)
    const own = new Uint8Array(bytes.subarray(8 + n + e.begin, 8 + n + e.end));
    tensors.set(e.name, { shape: e.shape, data: decode(e.dtype, own) });
  }
  return { tensors, metadata };
}

/**
 * Reads a sharded checkpoint from its `model.safetensors.index.json`: `{weight_map: {name: shard}}`.
 * Each shard is read once; every name the index lists must be in the shard it names.
 */
export async function readShardedSafetensors(indexPath: string): Promise<SafetensorsFile> {
  let text: string;
  try {
    text = await readFile(indexPath, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new CheckpointError(`safetensors index not found: ${indexPath}`);
    throw err;
  }
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${indexPath}: not valid JSON (${(err as Error).message})`);
  }
  const weightMap = isObject(index) ? index.weight_map : undefined;
  if (!isObject(weightMap) || !Object.values(weightMap).every((v) => typeof v === "string")) {
    throw new CheckpointError(`${indexPath}: expected {"weight_map": {tensor name: shard file name}}`);
  }
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, string>)) {
    if (isAbsolute(shard) || shard.split(/[\\/]/).includes("..")) {
      throw new CheckpointError(`${indexPath}: shard path ${JSON.stringify(shard)} for "${name}" must stay inside the checkpoint directory`);
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }

  const tensors: TensorMap = new Map();
  const metadata: Record<string, string> = {};
  for (const [shard, names] of byShard) {
    const path = join(dirname(indexPath), shard);
    const part = await readSafetensors(path).catch((err: Error) => {
      throw new CheckpointError(`${indexPath} lists shard ${shard}: ${err.message}`);
    });
    for (const name of names) {
      if (!part.tensors.has(name)) throw new CheckpointError(`${indexPath}: "${name}" is mapped to ${shard}, which does not contain it`);
    }
    for (const [name, t] of part.tensors) {
      if (tensors.has(name)) throw new CheckpointError(`${indexPath}: tensor "${name}" appears in more than one shard (again in ${shard})`);
      tensors.set(name, t);
    }
    Object.assign(metadata, part.metadata);
  }
  return { tensors, metadata };
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Serialises tensors in map order; the header is space-padded to 8 bytes so the data is aligned. */
export function serializeSafetensors(tensors: TensorMap, options: SafetensorsWriteOptions = {}): Uint8Array {
  const dtype = options.dtype ?? "F32";
  const size = BYTES_PER_ELEMENT[dtype]!;
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === "__metadata__") throw new Error(`a tensor cannot be named __metadata__`);
    if (t.data.length !== numel(t.shape)) {
      throw new Error(`tensor "${name}": shape [${t.shape.join(", ")}] needs ${numel(t.shape)} values, data has ${t.data.length}`);
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length * size] };
    offset += t.data.length * size;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);

  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const t of tensors.values()) {
    encodeInto(dtype, t.data, out.subarray(at, at + t.data.length * size));
    at += t.data.length * size;
  }
  return out;
}

export async function writeSafetensors(path: string, tensors: TensorMap, options: SafetensorsWriteOptions = {}): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, options));
}
