// Seeded randomness, all of it on the host (parameter init, sampling a token from probabilities
// already on the host, shuffling data): a small PRNG with serialisable state, so checkpoints can
// resume the exact stream.

/** xoshiro128** seeded by splitmix32: fast, good quality, 128 bits of state that fit in JSON. */
export class HostRng {
  #s: Uint32Array;

  constructor(seedOrState: number | number[]) {
    if (typeof seedOrState === "number") {
      let x = seedOrState >>> 0;
      const next = () => {
        x = (x + 0x9e3779b9) >>> 0;
        let z = x;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        return (z ^ (z >>> 16)) >>> 0;
      };
      this.#s = Uint32Array.from([next(), next(), next(), next()]);
    } else {
      if (seedOrState.length !== 4) throw new Error("HostRng state must have 4 words");
      this.#s = Uint32Array.from(seedOrState);
    }
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }

  /** A new generator whose stream is independent of this one's continuation. */
  fork(): HostRng {
    return new HostRng([this.nextUint32(), this.nextUint32(), this.nextUint32(), this.nextUint32() | 1]);
  }

  get state(): number[] {
    return Array.from(this.#s);
  }
}

/**
 * The next `n` entries of a shuffled cycle (prompt or data order kept in a run's progress): reads
 * from `cursor`, and at the end of a pass reshuffles a copy of the order with `rng` and starts over.
 * Returns the entries and the cycle's new order and cursor, which the caller stores.
 */
export function drawFromCycle(order: number[], cursor: number, n: number, rng: HostRng): { picked: number[]; order: number[]; cursor: number } {
  const picked: number[] = [];
  while (picked.length < n) {
    if (cursor >= order.length) {
      order = rng.shuffle([...order]);
      cursor = 0;
    }
    picked.push(order[cursor++]!);
  }
  return { picked, order, cursor };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
