// Runs one jax-js wasm kernel on the main thread and helper threads that share its memory.
//
// jax-js cuts each kernel into aligned chunks, one per "worker", and posts them all before awaiting
// any reply (see worker-shim.ts). Instead of a postMessage round trip per chunk, the chunks are
// published in a shared control block and claimed one at a time, with an atomic counter, by the main
// thread and by every helper that is awake: nothing waits on a message, a late or descheduled helper
// costs at most the one chunk it holds, and the main thread never idles while chunks are left.
import { MessageChannel, Worker as NodeWorker, type MessagePort } from "node:worker_threads";

export interface KernelChunk {
  kernelHash: unknown;
  module: WebAssembly.Module;
  ptrs: number[];
  begin: number;
  end: number;
  /** Every chunk boundary must be a multiple of this (jax-js's tile rows × tile width); sent by the patched jax-js. */
  alignment?: number;
}

type KernelFn = (...args: number[]) => void;

export const MAX_CHUNKS = 64;
const MAX_PTRS = 64;

/**
 * A large kernel is re-cut into pieces of at least this many outputs (on alignment boundaries), so
 * that the thread that finishes first keeps claiming work instead of waiting for the other's last
 * chunk: with jax-js's 4 chunks per kernel the main thread spent ~13% of a training step waiting.
 * Measured in one process, alternating steps: training step 3–10% faster, generation −6% to +2%
 * (4,096–65,536 compared; 16,384 was best for training).
 */
const MIN_PIECE = 16384;

/** jax-js's chunks of one kernel re-cut into more, smaller, aligned pieces where the kernel is large. */
export function recut(chunks: KernelChunk[]): KernelChunk[] {
  const first = chunks[0]!;
  const begin = first.begin;
  const end = chunks[chunks.length - 1]!.end;
  const alignment = first.alignment;
  if (alignment === undefined || alignment <= 0) return chunks;
  const units = Math.ceil((end - begin) / alignment);
  const pieces = Math.min(Math.floor((end - begin) / MIN_PIECE), units, MAX_CHUNKS);
  if (pieces <= chunks.length) return chunks;
  const size = Math.ceil(units / pieces) * alignment;
  const out: KernelChunk[] = [];
  for (let b = begin; b < end; b += size) out.push({ ...first, begin: b, end: Math.min(b + size, end) });
  return out;
}

// Control block (Int32 words). EPOCH is odd while a job is open for claiming.
const EPOCH = 0;
const KERNEL = 1;
const NCHUNKS = 2;
const NEXT = 3;
const ACTIVE = 4;
const FAILED = 5;
const NPTRS = 6;
const PTRS = 7;
const RANGES = PTRS + MAX_PTRS;
const CONTROL_WORDS = RANGES + 2 * MAX_CHUNKS;

/** Iterations a helper polls for the next job before sleeping (~0.3–1 ms: a decode step's gaps). */
const SPINS = 100000;

const HELPER_SOURCE = `
const { workerData, receiveMessageOnPort } = require("node:worker_threads");
const { memory, ctl, port } = workerData;
const kernels = new Map();
let seen = 0;
for (;;) {
  let epoch = Atomics.load(ctl, ${EPOCH});
  for (let spins = 0; (epoch & 1) === 0 || epoch === seen; epoch = Atomics.load(ctl, ${EPOCH})) {
    if (++spins > ${SPINS}) { Atomics.wait(ctl, ${EPOCH}, epoch); spins = 0; }
  }
  seen = epoch;
  Atomics.add(ctl, ${ACTIVE}, 1);
  // The job may have closed between seeing it and joining it; then its fields may already be reused.
  if (Atomics.load(ctl, ${EPOCH}) === epoch) {
    try {
      const id = ctl[${KERNEL}];
      let fn = kernels.get(id);
      while (fn === undefined) {
        const m = receiveMessageOnPort(port);
        if (m) kernels.set(m.message.id, new WebAssembly.Instance(m.message.module, { env: { memory } }).exports.kernel);
        fn = kernels.get(id);
      }
      const n = ctl[${NCHUNKS}];
      const args = Array.from(ctl.subarray(${PTRS}, ${PTRS} + ctl[${NPTRS}]));
      for (let c = Atomics.add(ctl, ${NEXT}, 1); c < n; c = Atomics.add(ctl, ${NEXT}, 1)) {
        fn(...args, ctl[${RANGES} + 2 * c], ctl[${RANGES} + 2 * c + 1]);
      }
    } catch {
      Atomics.store(ctl, ${FAILED}, 1);
    }
  }
  Atomics.sub(ctl, ${ACTIVE}, 1);
  Atomics.notify(ctl, ${ACTIVE});
}
`;

export class KernelThreads {
  readonly #memory: WebAssembly.Memory;
  readonly #ctl = new Int32Array(new SharedArrayBuffer(4 * CONTROL_WORDS));
  readonly #ports: MessagePort[] = [];
  /** Kernel ids the helpers know, by jax-js's kernel hash. */
  readonly #ids = new Map<unknown, number>();
  /** Main-thread instances by kernel id, least recently used first. */
  readonly #local = new Map<number, KernelFn>();

  constructor(memory: WebAssembly.Memory, helpers: number) {
    this.#memory = memory;
    for (let i = 0; i < helpers; i++) {
      const { port1, port2 } = new MessageChannel();
      const worker = new NodeWorker(HELPER_SOURCE, { eval: true, workerData: { memory, ctl: this.#ctl, port: port2 }, transferList: [port2] });
      worker.unref(); // an idle helper must not keep a finished process alive
      this.#ports.push(port1);
    }
  }

  /** Runs every chunk of one kernel (all with the same module and pointers); returns when all are done. */
  run(jaxChunks: KernelChunk[], share: boolean): void {
    const chunks = share && this.#ports.length > 0 ? recut(jaxChunks) : jaxChunks;
    const first = chunks[0]!;
    const id = this.#idFor(first);
    const fn = this.#localFn(id, first.module);
    if (!share || this.#ports.length === 0 || chunks.length === 1) {
      for (const c of chunks) fn(...c.ptrs, c.begin, c.end);
      return;
    }
    if (chunks.length > MAX_CHUNKS || first.ptrs.length > MAX_PTRS) throw new Error(`kernel-threads: ${chunks.length} chunks or ${first.ptrs.length} pointers is more than this runner holds`);
    const c = this.#ctl;
    c[KERNEL] = id;
    c[NCHUNKS] = chunks.length;
    c[NEXT] = 0;
    c[FAILED] = 0;
    c[NPTRS] = first.ptrs.length;
    c.set(first.ptrs, PTRS);
    chunks.forEach((chunk, i) => {
      c[RANGES + 2 * i] = chunk.begin;
      c[RANGES + 2 * i + 1] = chunk.end;
    });
    Atomics.add(c, EPOCH, 1); // open: the plain writes above are visible to whoever sees the new epoch
    Atomics.notify(c, EPOCH);
    let error: unknown = null;
    for (let i = Atomics.add(c, NEXT, 1); i < chunks.length; i = Atomics.add(c, NEXT, 1)) {
      try {
        fn(...first.ptrs, chunks[i]!.begin, chunks[i]!.end);
      } catch (err) {
        error ??= err;
      }
    }
    Atomics.add(c, EPOCH, 1); // close: a helper that joins from now on backs off
    for (let spins = 0, active = Atomics.load(c, ACTIVE); active !== 0; active = Atomics.load(c, ACTIVE)) {
      if (++spins > 2000) Atomics.wait(c, ACTIVE, active, 1);
    }
    if (error !== null) throw error;
    if (c[FAILED] !== 0) throw new Error("kernel-threads: a helper thread failed on a kernel chunk");
  }

  #idFor(chunk: KernelChunk): number {
    let id = this.#ids.get(chunk.kernelHash);
    if (id === undefined) {
      id = this.#ids.size + 1;
      this.#ids.set(chunk.kernelHash, id);
      // Sent before the job that needs it is published, so a helper finds it on its port at once.
      for (const port of this.#ports) port.postMessage({ id, module: chunk.module });
    }
    return id;
  }

  #localFn(id: number, module: WebAssembly.Module): KernelFn {
    let fn = this.#local.get(id);
    if (fn === undefined) {
      fn = new WebAssembly.Instance(module, { env: { memory: this.#memory } }).exports.kernel as KernelFn;
      if (this.#local.size >= 512) this.#local.delete(this.#local.keys().next().value!);
    } else {
      this.#local.delete(id);
    }
    this.#local.set(id, fn);
    return fn;
  }
}
