// Prompt + response sequences as one padded batch: prompts left-padded to P, responses
// right-padded to R, so every response starts at column P (what PPO, GRPO and DPO-style scoring
// need: per-token quantities of the response in aligned columns).
import { fromHost, intsFromHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";

export interface PackedSequences {
  batch: number;
  promptLength: number; // P
  responseLength: number; // R
  /** [B, P+R] token ids (pad = padId). */
  ids: Int32Array;
  /** [B, P+R] 1 for real tokens. */
  attention: Float32Array;
  /** [B, P+R] positions counting real tokens from 0. */
  positions: Int32Array;
  /** [B, R] 1 for real response tokens. */
  responseMask: Float32Array;
  /** [B, P+R] one-hot of each row's last real token (where a reward model reads its score). */
  lastToken: Float32Array;
}

export interface DeviceSequences {
  ids: Array;
  positions: Array;
  attention: Array;
  responseMask: Array;
  lastToken: Array;
}

/**
 * Packs prompts and responses; `responseLength` and `promptLength` pad (or must cover) every row.
 * Fixed lengths keep compiled functions from recompiling per batch.
 */
export function packSequences(prompts: number[][], responses: number[][], responseLength?: number, promptLength?: number, padId = 0): PackedSequences {
  const b = prompts.length;
  if (responses.length !== b) throw new Error(`packSequences: ${b} prompts but ${responses.length} responses`);
  const p = promptLength ?? Math.max(1, ...prompts.map((x) => x.length));
  if (prompts.some((x) => x.length > p)) throw new Error(`packSequences: a prompt is longer than ${p} tokens`);
  const r = responseLength ?? Math.max(1, ...responses.map((x) => x.length));
  const t = p + r;
  const ids = new Int32Array(b * t).fill(padId);
  const attention = new Float32Array(b * t);
  const positions = new Int32Array(b * t);
  const responseMask = new Float32Array(b * r);
  const lastToken = new Float32Array(b * t);
  for (let row = 0; row < b; row++) {
    const prompt = prompts[row]!;
    const response = responses[row]!;
    if (response.length > r) throw new Error(`packSequences: response ${row} has ${response.length} tokens, more than ${r}`);
    let position = 0;
    let last = -1;
    for (let i = 0; i < prompt.length; i++) {
      const col = p - prompt.length + i;
      ids[row * t + col] = prompt[i]!;
      attention[row * t + col] = 1;
      positions[row * t + col] = position++;
      last = col;
    }
    for (let i = 0; i < response.length; i++) {
      const col = p + i;
      ids[row * t + col] = response[i]!;
      attention[row * t + col] = 1;
      positions[row * t + col] = position++;
      responseMask[row * r + i] = 1;
      last = col;
    }
    if (last >= 0) lastToken[row * t + last] = 1;
  }
  return { batch: b, promptLength: p, responseLength: r, ids, attention, positions, responseMask, lastToken };
}

export function toDevice(s: PackedSequences): DeviceSequences {
  const t = s.promptLength + s.responseLength;
  return {
    ids: intsFromHost(s.ids, [s.batch, t]),
    positions: intsFromHost(s.positions, [s.batch, t]),
    attention: fromHost(s.attention, [s.batch, t]),
    responseMask: fromHost(s.responseMask, [s.batch, s.responseLength]),
    lastToken: fromHost(s.lastToken, [s.batch, t]),
  };
}

/** Rows of a packed [B, n] host array. */
export function rowsOf(data: ArrayLike<number>, batch: number, width: number): number[][] {
  return Array.from({ length: batch }, (_, r) => Array.from({ length: width }, (_, c) => data[r * width + c]!));
}
