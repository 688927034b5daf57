// Building blocks shared by the architectures. All of it is traced code (see engine/arrays.ts):
// a value used more than once is passed as `.ref` on every use but the last.
import { np, nn, random, type Array } from "../engine/runtime.ts";
import type { Llama3RopeScaling } from "./config-fields.ts";
import type { LoraPass, Params } from "./types.ts";

/** Masked-out attention scores: large and finite, so a fully padded row stays finite (HF does the same). */
export const MASK_VALUE = -1e9;

/**
 * Rows of `table` [N, D] at integer `ids` [...] → [..., D]: a gather, whose gradient is a
 * scatter-add into the table (patched jax-js compiles it under jit; see docs/jax-js-notes.md).
 */
export function lookup(table: Array, ids: Array): Array {
  return np.take(table, ids, 0);
}

/**
 * y = x Wᵀ (+ b), W in torch.nn.Linear layout [out, in]: x [..., 1, in] against W [out, in], the
 * product broadcast and summed over `in` (what matmul(x, Wᵀ) computes, bit for bit). W reaches the
 * product as it is, not through a transpose and reshape: the backward pass then reads W itself,
 * where a view of a weight that nothing differentiates (a LoRA adapter's frozen base) was kept as a
 * copy of it from the forward pass to the backward one (SmolLM2-135M: 400 MiB more per step).
 */
export function linear(x: Array, weight: Array, bias?: Array): Array {
  const y = np.vecdot(np.expandDims(x, -2), weight); // [..., out]
  return bias ? y.add(bias) : y;
}

/** y = x W (+ b), W in GPT-2's Conv1D layout [in, out]. */
export function conv1d(x: Array, weight: Array, bias?: Array): Array {
  const y = np.matmul(x, weight);
  return bias ? y.add(bias) : y;
}

/** Parameter names of a LoRA adapter on `module`, as PEFT names them (less the adapter name): A [r, in], B [out, r]. */
export function loraWeightNames(module: string): { a: string; b: string } {
  return { a: `${module}.lora_A.weight`, b: `${module}.lora_B.weight` };
}

/**
 * The linear projection `module`: y = x Wᵀ (+ b) with W = `module.weight` and b = `module.bias`
 * when the model has one (`conv1d`: GPT-2's Conv1D, W stored [in, out], y = x W + b). When params
 * hold an adapter on the module (loraWeightNames), LoRA's path is added as PEFT computes it:
 * y + s·((dropout(x) Aᵀ) Bᵀ). The adapter is never merged into W here: differentiating W + s·B·A
 * would materialise a full [out, in] gradient per layer, which is what LoRA exists to avoid.
 */
export function project(params: Params, module: string, x: Array, pass: { lora?: LoraPass | undefined; conv1d?: boolean } = {}): Array {
  const weight = params[`${module}.weight`]!.ref;
  const bias = params[`${module}.bias`]?.ref;
  const { a, b } = loraWeightNames(module);
  if (!(a in params)) return pass.conv1d ? conv1d(x, weight, bias) : linear(x, weight, bias);
  const lora = pass.lora;
  if (!lora) throw new Error(`${module} has a LoRA adapter in the parameters but the architecture has none attached (models/lora.ts withAdapter)`);
  const y = pass.conv1d ? conv1d(x.ref, weight, bias) : linear(x.ref, weight, bias);
  const row = lora.index.get(module)!;
  const key = lora.dropout > 0 && lora.keys ? lora.keys.ref.slice([row, row + 1]).reshape([2]) : null;
  const input = key ? dropout(x, lora.dropout, key) : x;
  const low = np.matmul(input, params[a]!.ref.transpose()); // [..., r]
  return y.add(np.matmul(low, params[b]!.ref.transpose()).mul(lora.scaling)); // [..., out]
}

/** Inverted dropout (PyTorch's): each value zeroed with probability p, the rest scaled by 1/(1 − p). */
function dropout(x: Array, p: number, key: Array): Array {
  const kept = random.bernoulli(key, 1 - p, x.shape);
  return np.where(kept, x.mul(1 / (1 - p)), 0);
}

export function rmsNorm(x: Array, weight: Array, eps: number): Array {
  const meanSquare = np.mean(np.square(x.ref), -1, { keepdims: true });
  return x.mul(np.reciprocal(np.sqrt(meanSquare.add(eps)))).mul(weight);
}

export function layerNorm(x: Array, weight: Array, bias: Array, eps: number): Array {
  const mean = np.mean(x.ref, -1, { keepdims: true });
  const centered = x.sub(mean);
  const variance = np.mean(np.square(centered.ref), -1, { keepdims: true });
  return centered.mul(np.reciprocal(np.sqrt(variance.add(eps)))).mul(weight).add(bias);
}

/**
 * GPT-2's "gelu_new", 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³), computed as the equal
 * x·sigmoid(2u) = x / (1 + exp(−2u)): one exp where jax-js's tanh takes two (the MLP activation was
 * ~8% of a decode step). Large |u| is safe: exp overflows to ∞ and x/∞ = 0, or exp → 0 and x/1 = x.
 */
export function geluTanh(x: Array): Array {
  const cube = x.ref.mul(x.ref).mul(x.ref);
  const minusTwoU = x.ref.add(cube.mul(0.044715)).mul(-2 * Math.sqrt(2 / Math.PI));
  return x.div(np.exp(minusTwoU).add(1));
}

/** Exact GELU, x·Φ(x). */
export function geluErf(x: Array): Array {
  return nn.gelu(x, { approximate: false });
}

export function silu(x: Array): Array {
  return x.ref.mul(nn.sigmoid(x));
}

/**
 * RoPE frequencies θ^(−2i/hd) for i < hd/2, with Llama 3's rescaling when the config asks for it
 * (transformers' `_compute_llama3_parameters`): wavelengths 2π/f longer than
 * original_max_position_embeddings / low_freq_factor are stretched by `factor`, those shorter than
 * original_max_position_embeddings / high_freq_factor are kept, and the band between is interpolated.
 */
export function ropeInvFreq(headDim: number, theta: number, scaling?: Llama3RopeScaling): Float32Array {
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const f = 1 / theta ** ((2 * i) / headDim);
    invFreq[i] = scaling ? llama3Frequency(f, scaling) : f;
  }
  return invFreq;
}

function llama3Frequency(f: number, s: Llama3RopeScaling): number {
  const wavelength = (2 * Math.PI) / f;
  const context = s.original_max_position_embeddings;
  if (wavelength < context / s.high_freq_factor) return f;
  if (wavelength > context / s.low_freq_factor) return f / s.factor;
  const smooth = (context / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1 - smooth) * (f / s.factor) + smooth * f;
}

/**
 * Rotary embedding tables for the given positions, in HF's rotate-half convention.
 * positions: [B, T] int32, invFreq: [hd/2] from ropeInvFreq → cos, sin: [B, T, 1, hd].
 */
export function ropeTables(positions: Array, invFreq: Float32Array): { cos: Array; sin: Array } {
  const headDim = 2 * invFreq.length;
  const angles = positions.astype(np.float32).reshape([...positions.shape, 1]).mul(np.array(invFreq)); // [B, T, hd/2]
  const full = np.concatenate([angles.ref, angles], -1); // [B, T, hd]
  const [b, t] = positions.shape as [number, number];
  return { cos: np.cos(full.ref).reshape([b, t, 1, headDim]), sin: np.sin(full).reshape([b, t, 1, headDim]) };
}

/** x: [B, T, H, hd] rotated by the tables from ropeTables. */
export function applyRope(x: Array, cos: Array, sin: Array): Array {
  const [x1, x2] = np.split(x.ref, 2, -1) as [Array, Array];
  const rotated = np.concatenate([x2.neg(), x1], -1);
  return x.mul(cos).add(rotated.mul(sin));
}

/**
 * For the last layer of a pass that wants only the last position (ForwardBatch.lastPositionOnly):
 * the residual stream x [B, T, D], queries q [B, T, H, hd] and bias [B, 1, 1, T, Tk] cut to the last
 * query position. Other passes get them back unchanged.
 */
export function lastQueryOnly(cut: boolean, x: Array, q: Array, bias: Array): [Array, Array, Array] {
  if (!cut) return [x, q, bias];
  const t = x.shape[1]!;
  return [x.slice([], [t - 1, t]), q.slice([], [t - 1, t]), bias.slice([], [], [], [t - 1, t])];
}

/**
 * Additive attention bias [B, 1, 1, Tq, Tk]: key k is visible to query q when it is not padding
 * and (for the causal part) k ≤ q + offset, where offset = Tk − Tq (queries are the last Tq keys).
 */
export function attentionBias(keyMask: Array, tq: number): Array {
  const [b, tk] = keyMask.shape as [number, number];
  const offset = tk - tq;
  const causal = new Float32Array(tq * tk);
  for (let q = 0; q < tq; q++) for (let k = 0; k < tk; k++) causal[q * tk + k] = k <= q + offset ? 1 : 0;
  const visible = np.array(causal).reshape([1, tq, tk]).mul(keyMask.astype(np.float32).reshape([b, 1, tk])); // [B, Tq, Tk]
  return visible.sub(1).mul(-MASK_VALUE).reshape([b, 1, 1, tq, tk]);
}

/**
 * Grouped-query attention. q: [B, Tq, H, hd]; k, v: [B, Tk, nKV, hd]; bias: [B, 1, 1, Tq, Tk].
 * Query heads are grouped G = H / nKV per key head, so keys are never copied. Returns [B, Tq, H·hd].
 */
export function attention(q: Array, k: Array, v: Array, bias: Array): Array {
  const [b, tq, h, hd] = q.shape as [number, number, number, number];
  const nKv = k.shape[2]!;
  const g = h / nKv;
  const qg = q.reshape([b, tq, nKv, g, hd]).transpose([0, 2, 3, 1, 4]); // [B, nKV, G, Tq, hd]
  const kt = k.transpose([0, 2, 3, 1]).reshape([b, nKv, 1, hd, k.shape[1]!]); // [B, nKV, 1, hd, Tk]
  const scores = np.matmul(qg, kt).mul(1 / Math.sqrt(hd)).add(bias); // [B, nKV, G, Tq, Tk]
  const probs = nn.softmax(scores, -1).transpose([0, 3, 1, 2, 4]); // [B, Tq, nKV, G, Tk]
  const vt = v.transpose([0, 2, 1, 3]).reshape([b, 1, nKv, v.shape[1]!, hd]); // [B, 1, nKV, Tk, hd]
  // Batched over (B, Tq, nKV) so the output is stored as [B, Tq, H·hd], the layout the output
  // projection reads: computed as [B, nKV, G, Tq, hd] and transposed, the projection read it with
  // head-sized strides and ran 6x slower (a 64-token prefill: 17 ms a layer instead of 3).
  const out = np.matmul(probs, vt); // [B, Tq, nKV, G, hd]
  return out.reshape([b, tq, h * hd]);
}

/**
 * Writes this step's keys or values into a fixed-size cache at per-row slot `slot` without
 * dynamic shapes, so one compiled decode step serves every position.
 * cache: [B, S, nKV, hd]; fresh: [B, 1, nKV, hd]; slotOneHot: [B, S] float32.
 */
export function writeCache(cache: Array, fresh: Array, slotOneHot: Array): Array {
  const [b, s] = slotOneHot.shape as [number, number];
  const oh = slotOneHot.reshape([b, s, 1, 1]);
  return cache.mul(oh.ref.neg().add(1)).add(fresh.mul(oh));
}
