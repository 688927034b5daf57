// f16 and q8_0 encodings against numpy (astype(float16), and gguf-py's quantize_q8_0 written out in
// numpy), and the GGUF header read back by llama.cpp's own reader in node-llama-cpp.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { HostRng } from "../engine/random.ts";
import { encodeGgml, ggmlBytes } from "./ggml-types.ts";
import { f16BitsToF32, f32ToF16Bits } from "./safetensors.ts";
import { gguf, writeGguf } from "./gguf.ts";
import { tempDir } from "./test-helpers.ts";

function numpy(script: string, input: Float32Array): Uint8Array {
  const r = spawnSync("/usr/bin/python3", ["-c", `import sys, numpy as np\nx = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32)\n${script}`], { input: Buffer.from(input.buffer), maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, `python3 with numpy failed: ${r.stderr}`);
  return new Uint8Array(r.stdout);
}

/** Values that exercise rounding: ties to even, subnormals, overflow, signed zero, random magnitudes. */
function awkwardValues(): Float32Array {
  const rng = new HostRng(5);
  const special = [0, -0, 1, -1, 65504, 65520, 65519.99, 70000, -70000, 2 ** -24, 2 ** -25, 1.5 * 2 ** -25, 2 ** -14, 2 ** -14 * (1 - 2 ** -11), 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e-8, Infinity, -Infinity];
  const random = Array.from({ length: 4096 }, (_, i) => rng.normal() * 10 ** ((i % 12) - 8));
  return Float32Array.from([...special, ...random]);
}

test("f32ToF16Bits (what f16 GGUF tensors hold) rounds as numpy's astype(float16) does, and f16BitsToF32 reads the bits back", () => {
  const x = awkwardValues();
  const expected = new Uint16Array(numpy("sys.stdout.buffer.write(x.astype(np.float16).tobytes())", x).buffer);
  const mismatches = [...x].map((v, i) => [v, f32ToF16Bits(v), expected[i]!] as const).filter(([, a, b]) => a !== b);
  assert.deepEqual(mismatches.slice(0, 5), []);
  for (const bits of [0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00]) assert.equal(f32ToF16Bits(f16BitsToF32(bits)), bits);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
});

test("q8_0 blocks equal gguf-py's quantize_q8_0 byte for byte", () => {
  const rng = new HostRng(9);
  const x = Float32Array.from({ length: 32 * 64 }, (_, i) => (i < 32 ? 0 : rng.normal() * (1 + (i % 7)))); // the first block all zeros
  x[40] = 2.5 * (Math.max(...x.subarray(32, 64).map(Math.abs)) / 127); // a value landing near a rounding tie
  const reference = numpy(
    [
      "b = x.reshape(-1, 32)",
      "d = np.abs(b).max(axis=1, keepdims=True) / np.float32(127)",
      "with np.errstate(divide='ignore'): inv = np.where(d == 0, 0, np.float32(1) / d).astype(np.float32)",
      "q = (b * inv).astype(np.float32)",
      "qs = (np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))).astype(np.int8)",
      "sys.stdout.buffer.write(np.concatenate([d.astype(np.float16).view(np.uint8), qs.view(np.uint8)], axis=1).tobytes())",
    ].join("\n"),
    x,
  );
  const ours = encodeGgml(x, "q8_0");
  assert.equal(ours.length, ggmlBytes([x.length], "q8_0"));
  assert.deepEqual(ours, reference);
});

test("a q8_0 row must be whole blocks of 32", () => {
  assert.throws(() => ggmlBytes([4, 33], "q8_0"), /a row of 33 values cannot be stored as q8_0 \(blocks of 32\)/);
  assert.equal(ggmlBytes([4, 33], "f16"), 264);
});

test("a GGUF file reads back in llama.cpp's reader: version, metadata, tensor infos, 32-byte aligned offsets", async () => {
  const { readGgufFileInfo } = await import("node-llama-cpp");
  const path = join(await tempDir(), "t.gguf");
  const metadata = new Map([
    ["general.architecture", gguf.string("llama")],
    ["test.flag", gguf.bool(true)],
    ["test.eps", gguf.f32(1e-6)],
    ["test.names", gguf.strings(["a", "▁b", ""])],
    ["test.ids", gguf.i32s([-1, 2])],
  ]);
  const rows = Float32Array.from({ length: 3 * 5 }, (_, i) => i);
  await writeGguf(path, metadata, [
    { name: "a", shape: [3, 5], type: "f32", values: () => rows },
    { name: "b", shape: [2, 32], type: "q8_0", values: () => new Float32Array(64).fill(1) },
    { name: "c", shape: [7], type: "f16", values: () => new Float32Array(7) },
  ]);
  const info = await readGgufFileInfo(path, { readTensorInfo: true });
  assert.equal(info.version, 3);
  const md = info.metadata as unknown as { general: { architecture: string }; test: { flag: boolean; eps: number; names: string[]; ids: number[] } };
  assert.equal(md.general.architecture, "llama");
  assert.deepEqual([md.test.flag, Math.fround(md.test.eps), md.test.names, md.test.ids], [true, Math.fround(1e-6), ["a", "▁b", ""], [-1, 2]]);
  const tensors = info.tensorInfo!.map((t) => ({ name: t.name, dims: t.dimensions.map(Number), type: t.ggmlType, offset: Number(t.offset) }));
  assert.deepEqual(tensors, [
    { name: "a", dims: [5, 3], type: 0, offset: 0 },
    { name: "b", dims: [32, 2], type: 8, offset: 64 }, // 60 bytes of f32, padded to 64
    { name: "c", dims: [7], type: 1, offset: 160 }, // 2 blocks of q8_0, 68 bytes, padded to 96
  ]);
});
