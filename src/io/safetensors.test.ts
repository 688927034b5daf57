import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  bf16BitsToF32, deserializeSafetensors, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits,
  readSafetensors, readShardedSafetensors, serializeSafetensors, writeSafetensors,
} from "./safetensors.ts";
import type { TensorMap } from "./tensors.ts";
import { tempDir } from "./test-helpers.ts";

/** Builds a safetensors file by hand, so the reader is tested against bytes it did not write. */
function handMade(header: Record<string, unknown>, data: Uint8Array, pad = true): Uint8Array {
  let json = JSON.stringify(header);
  if (pad) json += " ".repeat((8 - (json.length % 8)) % 8);
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const u16le = (...xs: number[]) => new Uint8Array(new Uint16Array(xs).buffer);

function sample(): TensorMap {
  return new Map([
    ["a.weight", { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 1e-30, -0, 65504.5]) }],
    ["scalar", { shape: [], data: Float32Array.from([Math.PI]) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
    ["b", { shape: [3], data: Float32Array.from([NaN, Infinity, -Infinity]) }],
  ]);
}

test("F32 write → read round trip is bit-exact, keeps order and metadata, aligns data to 8 bytes", async () => {
  const dir = await tempDir();
  const path = join(dir, "m.safetensors");
  await writeSafetensors(path, sample(), { metadata: { format: "pt" } });
  const bytes = await readFile(path);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + headerLen) % 8, 0);
  const { tensors, metadata } = await readSafetensors(path);
  assert.deepEqual(metadata, { format: "pt" });
  assert.deepEqual([...tensors.keys()], [...sample().keys()]);
  for (const [name, t] of sample()) {
    assert.deepEqual(tensors.get(name)!.shape, t.shape, name);
    assert.deepEqual(new Uint8Array(tensors.get(name)!.data.buffer), new Uint8Array(t.data.buffer), name);
  }
});

test("reads F16, BF16 and F64 from hand-written bytes", () => {
  // f16: 1, -2, smallest subnormal 2^-24, largest finite 65504, +inf, 0x3555 = 0.333251953125
  const f16 = u16le(0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0x3555);
  // bf16: 1, -3, 0x4049 = 3.140625
  const bf16 = u16le(0x3f80, 0xc040, 0x4049);
  const f64 = new Uint8Array(Float64Array.from([0.1, -1e10]).buffer);
  const data = new Uint8Array([...f64, ...f16, ...bf16]);
  const file = handMade({
    x64: { dtype: "F64", shape: [2], data_offsets: [0, 16] },
    h: { dtype: "F16", shape: [2, 3], data_offsets: [16, 28] },
    b: { dtype: "BF16", shape: [3], data_offsets: [28, 34] },
  }, data);
  const { tensors, metadata } = deserializeSafetensors(file, "hand");
  assert.deepEqual(metadata, {});
  assert.deepEqual(Array.from(tensors.get("h")!.data), [1, -2, 2 ** -24, 65504, Infinity, 0.333251953125]);
  assert.deepEqual(tensors.get("h")!.shape, [2, 3]);
  assert.deepEqual(Array.from(tensors.get("b")!.data), [1, -3, 3.140625]);
  assert.deepEqual(Array.from(tensors.get("x64")!.data), [Math.fround(0.1), -1e10]);
});

test("deserialize copies out of a misaligned Node Buffer without aliasing it", () => {
  const bytes = serializeSafetensors(sample());
  const buf = Buffer.concat([Buffer.alloc(1), Buffer.from(bytes)]).subarray(1); // byteOffset 1: Float32Array views would throw
  const { tensors } = deserializeSafetensors(buf);
  assert.deepEqual(Array.from(tensors.get("a.weight")!.data), Array.from(sample().get("a.weight")!.data));
  buf.fill(0);
  assert.equal(tensors.get("a.weight")!.data[0], 1);
});

test("f32 → f16 rounds to nearest even, overflows to inf, underflows through subnormals", () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-Infinity, 0xfc00],
    [1 / 3, 0x3555], [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [3 * 2 ** -25, 0x0002],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [-0, 0x8000], [0, 0],
  ];
  for (const [x, bits] of cases) assert.equal(f32ToF16Bits(x), bits, `f32ToF16Bits(${x})`);
  assert.equal(f32ToF16Bits(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(f32ToF16Bits(NaN) & 0x3ff, 0);
  for (let h = 0; h < 0x7c00; h += 7) assert.equal(f32ToF16Bits(f16BitsToF32(h)), h, `f16 0x${h.toString(16)} round trip`);
});

test("f32 → bf16 rounds to nearest even and keeps NaN a NaN", () => {
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(f32ToBf16Bits(Math.PI), 0x4049); // 0x40490fdb: the dropped half is below the tie
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // exact tie, 0x3f80 is even
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // exact tie, 0x3f81 is odd → up
  assert.equal(f32ToBf16Bits(-3), 0xc040);
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
  assert.equal(bf16BitsToF32(0x3f82), 1.015625);
});

test("writes F16 and BF16 that read back as the rounded values", () => {
  const tensors: TensorMap = new Map([["w", { shape: [4], data: Float32Array.from([1 / 3, -2, 70000, 2 ** -25 * 3]) }]]);
  const half = deserializeSafetensors(serializeSafetensors(tensors, { dtype: "F16" })).tensors.get("w")!;
  assert.deepEqual(Array.from(half.data), [0.333251953125, -2, Infinity, 2 ** -23]);
  const bf16Bytes = serializeSafetensors(tensors, { dtype: "BF16" });
  const brain = deserializeSafetensors(bf16Bytes).tensors.get("w")!;
  // 1/3 = 0x3eaaaaab → 0x3eab; 70000 = 0x4788b800 → 0x4789 = 70144; 3·2^-25 = 0x33c00000 is exact
  assert.deepEqual(Array.from(brain.data), [0.333984375, -2, 70144, 3 * 2 ** -25]);
  const headerLen = Number(new DataView(bf16Bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bf16Bytes.subarray(8, 8 + headerLen)));
  assert.equal(header.w.dtype, "BF16");
});

test("clear errors for missing, truncated and corrupt files", async () => {
  const dir = await tempDir();
  await assert.rejects(readSafetensors(join(dir, "nope.safetensors")), /safetensors file not found: .*nope\.safetensors/);

  const good = serializeSafetensors(sample());
  const cut = join(dir, "cut.safetensors");
  await writeFile(cut, good.subarray(0, good.length - 5));
  await assert.rejects(readSafetensors(cut), new RegExp(`truncated: its header describes ${good.length} bytes, the file has ${good.length - 5}`));
  await writeFile(cut, good.subarray(0, 20));
  await assert.rejects(readSafetensors(cut), /truncated: header says \d+ bytes of JSON, the file has 12/);
  await writeFile(cut, good.subarray(0, 5));
  await assert.rejects(readSafetensors(cut), /truncated: 5 bytes/);

  const data = new Uint8Array(16);
  const check = (header: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(() => deserializeSafetensors(handMade(header, data), "x.safetensors"), pattern);
  check({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } },
    /x\.safetensors: tensors "a" \[0, 8\) and "b" \[4, 12\) overlap/);
  check({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, /tensor "a": shape \[3\] of F32 needs 12 bytes, data_offsets \[0, 8\] span 8/);
  check({ a: { dtype: "F32", shape: [6], data_offsets: [0, 24] } }, /truncated: its header describes/);
  check({ a: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, /data_offsets must be \[begin, end\]/);
  check({ a: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, /tensor "a": dtype I64 is not supported/);
  check({ a: { dtype: "Q4", shape: [2], data_offsets: [0, 16] } }, /unknown dtype "Q4"/);
  check({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 16] } }, /shape must be an array of non-negative integers/);
  check({ __metadata__: { n: 3 } }, /__metadata__ must map strings to strings/);

  const badJson = handMade({}, data);
  badJson.set(new TextEncoder().encode("{\"a\":"), 8);
  assert.throws(() => deserializeSafetensors(badJson, "y"), /y: bad safetensors header, not valid JSON/);
  const huge = new Uint8Array(64);
  new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
  assert.throws(() => deserializeSafetensors(huge, "z"), /header length \d+ is implausible/);
});

test("sharded checkpoints: index → all shards, with consistency checks", async () => {
  const dir = await tempDir();
  const [a, b] = [{ shape: [2], data: Float32Array.from([1, 2]) }, { shape: [1, 1], data: Float32Array.from([3]) }];
  await writeSafetensors(join(dir, "model-00001-of-00002.safetensors"), new Map([["a", a]]));
  await writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), new Map([["b", b]]));
  const index = join(dir, "model.safetensors.index.json");
  const weightMap = { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" };
  await writeFile(index, JSON.stringify({ metadata: { total_size: 12 }, weight_map: weightMap }));
  const { tensors } = await readShardedSafetensors(index);
  assert.deepEqual([...tensors.keys()].sort(), ["a", "b"]);
  assert.deepEqual(tensors.get("b"), b);

  await writeFile(index, JSON.stringify({ weight_map: { ...weightMap, c: "model-00001-of-00002.safetensors" } }));
  await assert.rejects(readShardedSafetensors(index), /"c" is mapped to model-00001-of-00002\.safetensors, which does not contain it/);
  await writeFile(index, JSON.stringify({ weight_map: { ...weightMap, c: "model-00003.safetensors" } }));
  await assert.rejects(readShardedSafetensors(index), /lists shard model-00003\.safetensors: safetensors file not found/);
  await writeFile(index, JSON.stringify({ weight_map: { a: "../elsewhere.safetensors" } }));
  await assert.rejects(readShardedSafetensors(index), /must stay inside the checkpoint directory/);
  await writeFile(index, JSON.stringify({ weights: {} }));
  await assert.rejects(readShardedSafetensors(index), /expected \{"weight_map"/);
  await mkdir(join(dir, "empty"));
  await assert.rejects(readShardedSafetensors(join(dir, "empty", "model.safetensors.index.json")), /safetensors index not found/);
});
