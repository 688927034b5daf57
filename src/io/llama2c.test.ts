import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeLlama2c, readLlama2c, permuteRotaryRows } from "./llama2c.ts";
import { sharedData, tempDir } from "./test-helpers.ts";

const STORIES = "llama2c/stories260K.bin";

interface TinyHeader { dim: number; hidden: number; layers: number; heads: number; kvHeads: number; vocab: number; seqLen: number }

/**
 * Writes a llama2.c file by hand: every weight holds its own float index in the file (so any
 * misplaced read shows), the RoPE tables hold the real theta-10000 values.
 * Returns the bytes and where each stored array starts (in floats after the header).
 */
function tinyCheckpoint(h: TinyHeader): { bytes: Uint8Array; start: Record<string, number> } {
  const { dim: D, hidden: H, layers: L, seqLen } = h;
  const V = Math.abs(h.vocab);
  const hd = D / h.heads;
  const kv = h.kvHeads * hd;
  const sizes: [string, number][] = [
    ["emb", V * D], ["rms_att", L * D], ["wq", L * D * D], ["wk", L * kv * D], ["wv", L * kv * D], ["wo", L * D * D],
    ["rms_ffn", L * D], ["w1", L * H * D], ["w2", L * D * H], ["w3", L * H * D], ["rms_final", D],
    ["cos", seqLen * hd / 2], ["sin", seqLen * hd / 2], ...(h.vocab < 0 ? [["wcls", V * D] as [string, number]] : []),
  ];
  const total = sizes.reduce((s, [, n]) => s + n, 0);
  const floats = Float32Array.from({ length: total }, (_, i) => i);
  const start: Record<string, number> = {};
  let at = 0;
  for (const [name, n] of sizes) { start[name] = at; at += n; }
  for (let p = 0; p < seqLen; p++) {
    for (let i = 0; i < hd / 2; i++) {
      const angle = p * 10000 ** (-(2 * i) / hd);
      floats[start.cos! + p * hd / 2 + i] = Math.cos(angle);
      floats[start.sin! + p * hd / 2 + i] = Math.sin(angle);
    }
  }
  const bytes = new Uint8Array(28 + total * 4);
  const view = new DataView(bytes.buffer);
  [D, H, L, h.heads, h.kvHeads, h.vocab, seqLen].forEach((v, i) => view.setInt32(4 * i, v, true));
  bytes.set(new Uint8Array(floats.buffer), 28);
  return { bytes, start };
}

test("tiny hand-made checkpoint: names, shapes, layer slicing, q/k row permutation, untied classifier", () => {
  const h = { dim: 8, hidden: 4, layers: 2, heads: 2, kvHeads: 1, vocab: -3, seqLen: 3 };
  const { bytes, start } = tinyCheckpoint(h);
  const { config, tensors } = decodeLlama2c(bytes, "tiny.bin");
  assert.equal(config.tie_word_embeddings, false);
  assert.equal(config.vocab_size, 3);
  assert.equal(config.num_key_value_heads, 1);
  assert.equal(tensors.size, 2 + 9 * 2 + 1);
  const rows = (name: string) => {
    const t = tensors.get(name)!;
    return Array.from({ length: t.shape[0]! }, (_, r) => Array.from(t.data.subarray(r * t.shape[1]!, (r + 1) * t.shape[1]!)));
  };
  // Row r of a stored [out, in] matrix of layer l starts at start + l*out*in + r*in.
  const stored = (name: string, l: number, out: number, inDim: number, r: number) =>
    Array.from({ length: inDim }, (_, c) => start[name]! + l * out * inDim + r * inDim + c);

  // headDim 4: HF rows [0, 1, 2, 3] of each head are llama2.c rows [0, 2, 1, 3] (evens, then odds).
  const order = [0, 2, 1, 3];
  assert.deepEqual(rows("model.layers.1.self_attn.q_proj.weight"), [0, 1].flatMap((head) => order.map((r) => stored("wq", 1, 8, 8, head * 4 + r))));
  assert.deepEqual(rows("model.layers.1.self_attn.k_proj.weight"), order.map((r) => stored("wk", 1, 4, 8, r)));
  assert.deepEqual(rows("model.layers.1.self_attn.v_proj.weight"), [0, 1, 2, 3].map((r) => stored("wv", 1, 4, 8, r)));
  assert.deepEqual(tensors.get("model.layers.1.mlp.down_proj.weight")!.shape, [8, 4]);
  assert.deepEqual(rows("model.layers.1.mlp.down_proj.weight")[7], stored("w2", 1, 8, 4, 7));
  assert.deepEqual(rows("model.layers.0.mlp.gate_proj.weight")[3], stored("w1", 0, 4, 8, 3));
  assert.deepEqual(rows("model.layers.1.mlp.up_proj.weight")[0], stored("w3", 1, 4, 8, 0));
  assert.deepEqual(Array.from(tensors.get("model.layers.1.post_attention_layernorm.weight")!.data), stored("rms_ffn", 1, 1, 8, 0));
  assert.deepEqual(Array.from(tensors.get("model.norm.weight")!.data), stored("rms_final", 0, 1, 8, 0));
  assert.deepEqual(rows("lm_head.weight")[2], stored("wcls", 0, 3, 8, 2));
  assert.deepEqual(rows("model.embed_tokens.weight")[1], stored("emb", 0, 3, 8, 1));
});

/** llama2.c's RoPE: rotate pairs (2i, 2i+1) of each head. */
function ropeInterleaved(x: Float32Array, headDim: number, pos: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let j = 0; j < x.length; j += 2) {
    const angle = pos * 10000 ** (-((j % headDim)) / headDim);
    out[j] = x[j]! * Math.cos(angle) - x[j + 1]! * Math.sin(angle);
    out[j + 1] = x[j]! * Math.sin(angle) + x[j + 1]! * Math.cos(angle);
  }
  return out;
}

/** Hugging Face Llama's RoPE: rotate (i, i + headDim/2) of each head. */
function ropeHalves(x: Float32Array, headDim: number, pos: number): Float64Array {
  const out = new Float64Array(x.length);
  const half = headDim / 2;
  for (let h0 = 0; h0 < x.length; h0 += headDim) {
    for (let i = 0; i < half; i++) {
      const angle = pos * 10000 ** (-(2 * i) / headDim);
      const [a, b] = [x[h0 + i]!, x[h0 + i + half]!];
      out[h0 + i] = a * Math.cos(angle) - b * Math.sin(angle);
      out[h0 + i + half] = a * Math.sin(angle) + b * Math.cos(angle);
    }
  }
  return out;
}

function matvec(w: Float32Array, rows: number, cols: number, x: Float32Array): Float32Array {
  return Float32Array.from({ length: rows }, (_, r) => {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c]! * x[c]!;
    return s;
  });
}

test("the permutation makes HF rotate-half attention scores equal llama2.c's interleaved ones", async () => {
  const { tensors } = await readLlama2c(sharedData(STORIES));
  const bytes = await readFile(sharedData(STORIES));
  const raw = new Float32Array(new Uint8Array(bytes.subarray(28)).buffer);
  const [D, hd, heads, kvHeads] = [64, 8, 8, 4];
  const wqRaw = raw.subarray(33088, 33088 + D * D); // layer 0, straight from the file
  const wkRaw = raw.subarray(53568, 53568 + 32 * D);
  let seed = 1;
  const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) - 0.5;
  const x = Float32Array.from({ length: D }, rand);
  const y = Float32Array.from({ length: D }, rand);

  const scores = (q: Float64Array, k: Float64Array) =>
    Array.from({ length: heads }, (_, h) => {
      const kvh = Math.floor(h / (heads / kvHeads));
      let s = 0;
      for (let i = 0; i < hd; i++) s += q[h * hd + i]! * k[kvh * hd + i]!;
      return s;
    });
  const reference = scores(ropeInterleaved(matvec(wqRaw, D, D, x), hd, 5), ropeInterleaved(matvec(wkRaw, 32, D, y), hd, 2));
  const q = tensors.get("model.layers.0.self_attn.q_proj.weight")!;
  const k = tensors.get("model.layers.0.self_attn.k_proj.weight")!;
  const hf = scores(ropeHalves(matvec(q.data, D, D, x), hd, 5), ropeHalves(matvec(k.data, 32, D, y), hd, 2));
  for (let h = 0; h < heads; h++) assert.ok(Math.abs(hf[h]! - reference[h]!) < 1e-5, `head ${h}: ${hf[h]} vs ${reference[h]}`);
  // And without the permutation they would differ, so the check above has teeth.
  const unpermuted = scores(ropeHalves(matvec(wqRaw, D, D, x), hd, 5), ropeHalves(matvec(wkRaw, 32, D, y), hd, 2));
  assert.ok(unpermuted.some((s, h) => Math.abs(s - reference[h]!) > 1e-3));
});

test("stories260K: config, shapes and values read straight from file offsets", async () => {
  const path = sharedData(STORIES);
  const { config, tensors } = await readLlama2c(path);
  assert.deepEqual(
    [config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads, config.vocab_size, config.max_position_embeddings],
    [64, 172, 5, 8, 4, 512, 512],
  );
  assert.equal(config.tie_word_embeddings, true);
  assert.equal(config.head_dim, 8);
  assert.equal(config.rms_norm_eps, 1e-5);
  assert.equal(config.rope_theta, 10000);
  assert.equal(tensors.has("lm_head.weight"), false);
  assert.equal(tensors.size, 2 + 9 * 5);
  assert.deepEqual(tensors.get("model.layers.4.self_attn.k_proj.weight")!.shape, [32, 64]);
  assert.deepEqual(tensors.get("model.layers.4.mlp.down_proj.weight")!.shape, [64, 172]);

  const file = await readFile(path);
  const at = (floatIndex: number) => file.readFloatLE(28 + 4 * floatIndex);
  const emb = tensors.get("model.embed_tokens.weight")!.data;
  for (let i = 0; i < 4; i++) assert.equal(emb[i], at(i));
  assert.equal(emb[511 * 64 + 63], at(32767));
  // wv starts after emb 32768 + rms_att 320 + wq 20480 + wk 10240 floats; layer 2, row 5, column 7
  assert.equal(tensors.get("model.layers.2.self_attn.v_proj.weight")!.data[5 * 64 + 7], at(63808 + 2 * 32 * 64 + 5 * 64 + 7));
  // q_proj row 1 is llama2.c's row 2 (head 0: evens first)
  assert.equal(tensors.get("model.layers.0.self_attn.q_proj.weight")!.data[1 * 64 + 3], at(33088 + 2 * 64 + 3));
  assert.deepEqual(Array.from(tensors.get("model.norm.weight")!.data.subarray(0, 3)), [at(259968), at(259969), at(259970)]);
});

test("permuteRotaryRows: each head [a0 b0 a1 b1] → [a0 a1 b0 b1]", () => {
  const out = permuteRotaryRows({ shape: [8, 1], data: Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]) }, 2);
  assert.deepEqual(Array.from(out.data), [0, 2, 1, 3, 4, 6, 5, 7]);
});

test("clear errors: missing file, size mismatch with classifier hint, nonsense headers", async () => {
  const dir = await tempDir();
  await assert.rejects(readLlama2c(join(dir, "missing.bin")), /llama2\.c checkpoint not found: .*missing\.bin/);

  const good = await readFile(sharedData(STORIES));
  assert.throws(() => decodeLlama2c(good.subarray(0, good.length - 4), "cut.bin"),
    /cut\.bin: file size does not match its header: expected 1056540 bytes, got 1056536 \(.*classifier is shared/);
  const flipped = new Uint8Array(good);
  new DataView(flipped.buffer).setInt32(20, -512, true);
  assert.throws(() => decodeLlama2c(flipped, "flip.bin"),
    /expected 1187612 bytes, got 1056540 .*size fits a shared classifier, so the header's vocab_size sign is likely wrong/);
  const path = join(dir, "cut.bin");
  await writeFile(path, good.subarray(0, 1000));
  await assert.rejects(readLlama2c(path), /expected 1056540 bytes, got 1000/);

  const header = (...ints: number[]) => new Uint8Array(Int32Array.from(ints).buffer);
  assert.throws(() => decodeLlama2c(header(0, 4, 1, 1, 1, 3, 2), "h"), /dim = 0 must be positive/);
  assert.throws(() => decodeLlama2c(header(8, 4, 1, 3, 1, 3, 2), "h"), /dim 8 is not divisible by n_heads 3/);
  assert.throws(() => decodeLlama2c(header(8, 4, 1, 4, 3, 3, 2), "h"), /n_heads 4 is not divisible by n_kv_heads 3/);
  assert.throws(() => decodeLlama2c(header(8, 4, 1, 1, 1, 0, 2), "h"), /vocab_size = 0/);
  assert.throws(() => decodeLlama2c(header(1, 2), "h"), /too short for a llama2\.c checkpoint/);
  assert.throws(() => decodeLlama2c(header(0x616b3432, 1, 0, 0, 0, 0, 0), "v1.bin"), /magic "ak42", version 1/);

  const { bytes, start } = tinyCheckpoint({ dim: 8, hidden: 4, layers: 1, heads: 2, kvHeads: 2, vocab: 3, seqLen: 3 });
  new DataView(bytes.buffer).setFloat32(28 + 4 * (start.cos! + 2 * 2 + 1), 0.5, true);
  assert.throws(() => decodeLlama2c(bytes, "rope.bin"), /freq_cis tables do not match rope_theta 10000 \(position 2, pair 1/);
});
