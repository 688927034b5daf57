// A KV cache whose rows are independent sequences that come and go (continuous batching): each row
// holds one sequence in slots 0..length-1 of a cache of S slots (the first ones masked padding),
// with its own length and positions, so a sequence can join the batch while others are halfway
// through, and leave it at any step.
// Rows move (the batch grows, shrinks, takes a new prompt) by multiplying the cache with a 0/1
// placement matrix, which copies values exactly. S follows the longest sequence a row may reach
// (a power of two, at most `maxSlots`): every step reads and rewrites the whole cache, so short
// requests should not pay for the model's full context. Neither S nor the neighbours change a
// row's numbers (checked bitwise); the engine's matmul does change kernels between 3 and 4 rows,
// which moves logits by ~1e-5.
import { np, type Array } from "../engine/runtime.ts";
import { compile, fromHost, intsFromHost, release, toHost } from "../engine/arrays.ts";
import type { Architecture } from "../models/architecture.ts";
import type { KvCache, Params } from "../models/types.ts";
import type { DecodeRows, PromptRows } from "./decode-rows.ts";
import { decodingSteps } from "./steps.ts";

/** out[i] = Σ_j placement[i, j] · cache[j] for every layer's keys and values: [B_in, S, nKV, hd] → [B_out, S, nKV, hd]. */
function placed(cache: KvCache, placement: Array): KvCache {
  const [bOut] = placement.shape as [number, number];
  const move = (x: Array) => {
    const [bIn, ...rest] = x.shape as number[];
    return np.matmul(placement.ref, x.reshape([bIn!, -1])).reshape([bOut, ...rest]);
  };
  return { keys: cache.keys.map(move), values: cache.values.map(move) };
}

const addCaches = (a: KvCache, b: KvCache): KvCache => ({
  keys: a.keys.map((k, i) => k.add(b.keys[i]!)),
  values: a.values.map((v, i) => v.add(b.values[i]!)),
});

const MIN_SLOTS = 16;

export class RowBatch implements DecodeRows {
  readonly maxSlots: number;
  /** Its logits are whole: the scheduler samples every row. */
  readonly samplesDraws = false;
  #slots = MIN_SLOTS;
  readonly #arch: Architecture;
  readonly #params: Params;
  readonly #steps;
  readonly #rearrange = compile((cache: KvCache, placement: Array) => placed(cache, placement));
  // The prompt's cache arrives `width` slots long and is widened here, in this small program, so
  // the prefill (the whole model) is compiled once per prompt width, not per width and slot count.
  readonly #insert = compile((cache: KvCache, keep: Array, fresh: KvCache, put: Array, padSlots: Array) => {
    const widen = (x: Array) => np.concatenate([x, padSlots.ref], 1);
    return addCaches(placed(cache, keep), placed({ keys: fresh.keys.map(widen), values: fresh.values.map(widen) }, put));
  });
  readonly #transposed: Array[];
  #cache: KvCache | null = null;
  #rows = 0;
  // Host mirrors of each row: which slots hold keys, the next slot to write, the next position id.
  #keyMask = new Float32Array(0);
  #length = new Int32Array(0);
  #reach = new Int32Array(0); // slots each row may come to fill (padded prompt + completion)
  #pad = new Int32Array(0); // slots before each row's prompt

  /** `params` stay the caller's; the batch only reads them. */
  constructor(arch: Architecture, params: Params, maxSlots: number) {
    if (maxSlots > arch.maxPositions) throw new Error(`row batch: ${maxSlots} slots exceed the model's context of ${arch.maxPositions}`);
    this.#arch = arch;
    this.maxSlots = maxSlots;
    this.#steps = decodingSteps(arch);
    const names = arch.transposedForDecoding;
    this.#transposed = names.length > 0 ? this.#steps.transpose(names.map((n) => params[n]!)) : [];
    this.#params = { ...params, ...Object.fromEntries(names.map((n, i) => [n, this.#transposed[i]!])) };
  }

  /** Rows in the cache (free ones included). */
  get rows(): number {
    return this.#rows;
  }

  /** Cache slots per row now. */
  get slots(): number {
    return this.#slots;
  }

  /**
   * Resizes to `from.length` rows, new row i taking old row from[i] (-1: an empty row). Growing,
   * shrinking and compacting are all this.
   */
  arrange(from: number[]): void {
    const s = this.#slots;
    const keyMask = new Float32Array(from.length * s);
    const length = new Int32Array(from.length);
    const reach = new Int32Array(from.length);
    const pad = new Int32Array(from.length);
    const placement = new Float32Array(from.length * this.#rows);
    from.forEach((j, i) => {
      if (j < 0) return;
      keyMask.set(this.#keyMask.subarray(j * s, (j + 1) * s), i * s);
      length[i] = this.#length[j]!;
      reach[i] = this.#reach[j]!;
      pad[i] = this.#pad[j]!;
      placement[i * this.#rows + j] = 1;
    });
    let cache: KvCache | null;
    if (from.length === 0) {
      cache = null;
    } else if (this.#cache === null) {
      const zeros = () => Array.from({ length: this.#arch.numLayers }, () => np.zeros([from.length, s, this.#arch.numKvHeads, this.#arch.headDim]));
      cache = { keys: zeros(), values: zeros() };
    } else {
      const p = fromHost(placement, [from.length, this.#rows]);
      cache = this.#rearrange(this.#cache, p);
      release(p);
    }
    if (this.#cache) release(this.#cache);
    this.#cache = cache;
    this.#rows = from.length;
    this.#keyMask = keyMask;
    this.#length = length;
    this.#reach = reach;
    this.#pad = pad;
  }

  /** Resizes every row to the slots its longest sequence may need (eager ops: this happens on arrivals and departures, not every step). */
  #fitSlots(reach: number): void {
    let slots = MIN_SLOTS;
    while (slots < reach) slots *= 2;
    slots = Math.min(slots, this.maxSlots);
    const old = this.#slots;
    if (slots === old) return;
    const b = this.#rows;
    if (this.#cache) {
      const resize = (x: Array) => (slots > old ? np.concatenate([x, np.zeros([b, slots - old, this.#arch.numKvHeads, this.#arch.headDim])], 1) : x.slice([], [0, slots]));
      this.#cache = { keys: this.#cache.keys.map(resize), values: this.#cache.values.map(resize) };
    }
    const keyMask = new Float32Array(b * slots);
    const kept = Math.min(old, slots);
    for (let r = 0; r < b; r++) keyMask.set(this.#keyMask.subarray(r * old, r * old + kept), r * slots);
    this.#keyMask = keyMask;
    this.#slots = slots;
  }

  #longestReach(): number {
    return this.#reach.reduce((m, x) => Math.max(m, x), 0);
  }

  /** Empties row r (its slots are no longer read; the next insert overwrites them). */
  clear(r: number): void {
    this.#keyMask.fill(0, r * this.#slots, (r + 1) * this.#slots);
    this.#length[r] = 0;
    this.#reach[r] = 0;
    this.#pad[r] = 0;
  }

  /**
   * Reads each prompt once and puts its cache in each of its `rows` (free rows: one prompt, n
   * choices), which may grow to `reach` tokens; returns each prompt's next-token logits [V].
   * Prompts are left-padded to a power of two (at least 16 tokens) when that still fits: jax-js
   * compiles the prefill once per shape (0.1-1 s each), so a server that met every prompt length
   * would keep compiling and keep every program. Pad slots are masked and positions count real
   * tokens only, so the padding changes no number but float32 rounding. Prompts of one padded
   * width are read together, in groups of a power of two.
   */
  async insert(prompts: PromptRows[]): Promise<Float32Array[]> {
    const widths = prompts.map(({ ids, reach }) => {
      const p = ids.length;
      if (p === 0 || p >= reach || reach > this.maxSlots) throw new Error(`row batch: a prompt of ${p} tokens growing to ${reach} does not fit ${this.maxSlots} slots`);
      let width = MIN_SLOTS;
      while (width < p) width *= 2;
      return width - p + reach > this.maxSlots ? p : width;
    });
    this.#fitSlots(Math.max(this.#longestReach(), ...prompts.map((q, i) => q.reach + widths[i]! - q.ids.length)));
    const logits = new Array<Float32Array>(prompts.length);
    const byWidth = new Map<number, number[]>();
    widths.forEach((w, i) => byWidth.set(w, [...(byWidth.get(w) ?? []), i]));
    for (const [width, members] of byWidth) {
      for (let at = 0; at < members.length; ) {
        let k = 1;
        while (k * 2 <= members.length - at) k *= 2;
        const group = members.slice(at, at + k);
        at += k;
        const read = await this.#prefillInto(group.map((i) => prompts[i]!), width);
        group.forEach((i, j) => (logits[i] = read[j]!));
      }
    }
    return logits;
  }

  /** One prefill pass over `prompts`, all padded to `width`, their caches placed in their rows. */
  async #prefillInto(prompts: PromptRows[], width: number): Promise<Float32Array[]> {
    const [k, s, b, v] = [prompts.length, this.#slots, this.#rows, this.#arch.vocabSize];
    const ids = new Int32Array(k * width);
    const positions = new Int32Array(k * width);
    const mask = new Float32Array(k * width);
    const keep = new Float32Array(b * b);
    const put = new Float32Array(b * k);
    for (let r = 0; r < b; r++) keep[r * b + r] = 1;
    prompts.forEach(({ ids: promptIds, rows, reach }, j) => {
      const pad = width - promptIds.length;
      promptIds.forEach((id, i) => {
        ids[j * width + pad + i] = id;
        positions[j * width + pad + i] = i;
        mask[j * width + pad + i] = 1;
      });
      for (const r of rows) {
        keep[r * b + r] = 0;
        put[r * k + j] = 1;
        this.#keyMask.fill(0, r * s, (r + 1) * s);
        this.#keyMask.fill(1, r * s + pad, r * s + width);
        this.#length[r] = width;
        this.#pad[r] = pad;
        this.#reach[r] = reach + pad;
      }
    });
    const kvShape = (slots: number) => [k, slots, this.#arch.numKvHeads, this.#arch.headDim];
    const inputs = [intsFromHost(ids, [k, width]), intsFromHost(positions, [k, width]), fromHost(mask, [k, width]), np.zeros(kvShape(0))] as const;
    const first = this.#steps.prefill(this.#params, ...inputs);
    release(inputs);
    const placements = [fromHost(keep, [b, b]), fromHost(put, [b, k]), np.zeros(kvShape(s - width))] as const;
    const cache = this.#insert(this.#cache!, placements[0], first.cache, placements[1], placements[2]);
    release([placements, first.cache, this.#cache]);
    this.#cache = cache;
    const logits = await toHost(first.logits);
    return prompts.map((_, j) => logits.slice(j * v, (j + 1) * v));
  }

  /**
   * Feeds tokens[r] to every row in `active` (the others are left as they are) and returns the
   * next-token logits of all rows, [rows × V] (a row not fed gives logits to ignore).
   */
  async step(tokens: Int32Array, active: readonly boolean[]): Promise<Float32Array> {
    this.#fitSlots(this.#longestReach());
    const [b, s] = [this.#rows, this.#slots];
    const slotOneHot = new Float32Array(b * s);
    const positions = new Int32Array(b);
    for (let r = 0; r < b; r++) {
      if (!active[r]) continue;
      const slot = this.#length[r]!;
      if (slot >= s) throw new Error(`row batch: row ${r} is full (${s} slots)`);
      this.#keyMask[r * s + slot] = 1;
      slotOneHot[r * s + slot] = 1;
      positions[r] = slot - this.#pad[r]!;
      this.#length[r] = slot + 1;
    }
    const inputs = [intsFromHost(tokens, [b, 1]), intsFromHost(positions, [b, 1]), fromHost(this.#keyMask, [b, s]), fromHost(slotOneHot, [b, s])] as const;
    const next = this.#steps.decode(this.#params, this.#cache!, ...inputs);
    release([inputs, this.#cache]);
    this.#cache = next.cache;
    return toHost(next.logits);
  }

  dispose(): void {
    if (this.#cache) release(this.#cache);
    this.#cache = null;
    release(this.#transposed);
    for (const f of [this.#rearrange, this.#insert, ...Object.values(this.#steps)]) f.dispose();
  }
}
