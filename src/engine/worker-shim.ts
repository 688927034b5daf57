// jax-js's wasm backend runs kernels on a pool of Web Workers created from a blob: URL, with the
// browser API (`new Worker(url, {type: "module"})`, `onmessage`, `postMessage`, `self`). Node 20 has
// no global Worker, and the maintained npm shim (`web-worker`) only accepts file: URLs, so this maps
// the small part of the API jax-js uses onto node:worker_threads. Measured: 1.3x faster training
// steps on 2 cores than running kernels on the main thread.
import { MessageChannel, Worker as NodeWorker, type MessagePort } from "node:worker_threads";
import { availableParallelism } from "node:os";

// Runs inside each worker before jax-js's own worker source: gives it `self`, `postMessage`, `onmessage`.
const PRELUDE = `
const { parentPort } = require("node:worker_threads");
globalThis.self = globalThis;
globalThis.postMessage = (message) => parentPort.postMessage(message);
parentPort.on("message", (data) => { if (typeof self.onmessage === "function") self.onmessage({ data }); });
`;

type MessageHandler = ((event: { data: unknown }) => void) | null;
type ErrorHandler = ((event: { message: string }) => void) | null;

class BrowserStyleWorker {
  onmessage: MessageHandler = null;
  onerror: ErrorHandler = null;
  readonly #worker: NodeWorker;

  constructor(url: string | URL) {
    const source = readBlobSource(String(url));
    this.#worker = new NodeWorker(PRELUDE + source, { eval: true });
    this.#worker.on("message", (data) => {
      // jax-js's protocol answers every message with exactly one reply ("ready" or "done").
      if (--this.#awaitingReplies === 0) this.#worker.unref();
      this.onmessage?.({ data });
    });
    this.#worker.on("error", (err) => this.onerror?.({ message: err.message }));
    // An idle kernel worker must not keep a finished process alive, but one with work in flight
    // must, or Node exits mid-computation. (Set after the listeners: adding one refs the port.)
    this.#worker.unref();
  }

  #awaitingReplies = 0;

  postMessage(message: unknown): void {
    if (this.#awaitingReplies++ === 0) this.#worker.ref();
    this.#worker.postMessage(message);
  }

  terminate(): void {
    void this.#worker.terminate();
  }
}

/** The blob's text must be read synchronously because `new Worker()` is synchronous. */
const blobSources = new Map<string, string>();

function readBlobSource(url: string): string {
  const cached = blobSources.get(url);
  if (cached !== undefined) return cached;
  throw new Error(`worker-shim: no source registered for ${url}`);
}

let installed = false;

/**
 * Installs a global `Worker` (and `navigator.hardwareConcurrency`, which sizes jax-js's pool) if the
 * runtime lacks them. Call before `init("wasm")`.
 */
export function installWorkerShim(threads = availableParallelism()): void {
  if (installed) return;
  installed = true;
  const g = globalThis as Record<string, unknown>;
  if (typeof g.navigator === "undefined") {
    g.navigator = { hardwareConcurrency: threads };
  }
  if (typeof g.Worker !== "undefined") return;
  // URL.createObjectURL is synchronous, and so is `new Worker(url)`; capture the blob's text when the
  // URL is made, since resolveObjectURL only yields an async-readable Blob.
  const originalCreate = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (obj: Blob): string => {
    const url = originalCreate(obj);
    pendingBlobReads.push(
      obj.text().then((text) => {
        blobSources.set(url, text);
      }),
    );
    return url;
  };
  g.Worker = LazyWorker;
}

const pendingBlobReads: Promise<void>[] = [];

/** Waits until every blob handed to URL.createObjectURL has been read (see installWorkerShim). */
export async function blobsRead(): Promise<void> {
  await Promise.all(pendingBlobReads);
}

/**
 * Kernels whose slice of work is at most this many output elements run inline on the main thread:
 * for them the round trip to a worker thread costs more than the work. Measured on the standard
 * benchmark: a KV-cached decode step (8 sequences) fell from 14 ms to ~7 ms, while the training
 * step, whose kernels are large, kept its two-thread speed. RLHF_INLINE_KERNEL_ELEMS overrides.
 */
const INLINE_LIMIT = Number(process.env.RLHF_INLINE_KERNEL_ELEMS ?? 16384);

/** Compiled kernel instances for inline execution, keyed by jax-js's kernel hash (LRU like its workers). */
const inlineKernels = new Map<unknown, (...args: number[]) => void>();
let sharedMemory: WebAssembly.Memory | null = null;

interface KernelMessage {
  type: "kernel";
  kernelHash: unknown;
  module: WebAssembly.Module;
  ptrs: number[];
  begin: number;
  end: number;
}

function runInline(msg: KernelMessage): void {
  let fn = inlineKernels.get(msg.kernelHash);
  if (fn === undefined) {
    const instance = new WebAssembly.Instance(msg.module, { env: { memory: sharedMemory! } });
    fn = instance.exports.kernel as (...args: number[]) => void;
    inlineKernels.set(msg.kernelHash, fn);
    if (inlineKernels.size > 256) inlineKernels.delete(inlineKernels.keys().next().value);
  } else {
    inlineKernels.delete(msg.kernelHash);
    inlineKernels.set(msg.kernelHash, fn);
  }
  fn(...msg.ptrs, msg.begin, msg.end);
}


/**
 * With two threads, jax-js splits a kernel in two halves, one per worker. For mid-size kernels (a
 * decode step's matmuls and KV-cache writes) a postMessage round trip costs about what the half
 * does, so instead the main thread runs one half and hands the other to a helper thread through
 * shared memory (Atomics), which takes microseconds. The helper spins briefly between kernels; if
 * it has not picked a half up by the time the main thread is done with its own, the main thread
 * runs that half too, and a helper that keeps it waiting (other processes busy on the cores) is left
 * alone for a while. Measured on the standard benchmark (2 shared cores, back to back): 64-token
 * generation 712–881 → 494–659 ms, training step and forward pass unchanged within noise.
 * RLHF_PAIRED_KERNEL_ELEMS (elements per half, default 262144; 0 turns pairing off) overrides.
 */
const PAIR_MIN = 1024;
const PAIR_LIMIT = Number(process.env.RLHF_PAIRED_KERNEL_ELEMS ?? 262144);

// Control words: state, kernel id, begin, end, number of pointers, pointers...
const IDLE = 0;
const POSTED = 1;
const DONE = 2;
const STOLEN = 3;
const RUNNING = 4;
const FAILED = 5;

const HELPER_SOURCE = `
const { workerData, receiveMessageOnPort } = require("node:worker_threads");
const { memory, ctl, port } = workerData;
const kernels = new Map();
for (;;) {
  for (let spins = 0; Atomics.load(ctl, 0) !== ${POSTED}; ) {
    if (++spins > 100000) { Atomics.wait(ctl, 0, ${IDLE}); spins = 0; }
  }
  if (Atomics.compareExchange(ctl, 0, ${POSTED}, ${RUNNING}) !== ${POSTED}) continue;
  try {
    while (!kernels.has(ctl[1])) {
      const m = receiveMessageOnPort(port);
      if (m) kernels.set(m.message.id, new WebAssembly.Instance(m.message.module, { env: { memory } }).exports.kernel);
    }
    const args = Array.from(ctl.subarray(5, 5 + ctl[4]));
    kernels.get(ctl[1])(...args, ctl[2], ctl[3]);
    Atomics.store(ctl, 0, ${DONE});
  } catch {
    Atomics.store(ctl, 0, ${FAILED});
  }
  Atomics.notify(ctl, 0);
}
`;

class PairHelper {
  readonly #ctl = new Int32Array(new SharedArrayBuffer(4 * (5 + 64)));
  readonly #port: MessagePort;
  readonly #ids = new Map<unknown, number>();
  #posted: KernelMessage | null = null;
  #lateness = 0;
  /** The posted kernel is new to the helper, which compiles an instance first: its wait is no sign of a busy core. */
  #firstRun = false;
  #postedAt = 0;
  /** Kernels to run inline before trying the helper again. */
  pausedFor = 0;

  constructor(memory: WebAssembly.Memory) {
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    const worker = new NodeWorker(HELPER_SOURCE, { eval: true, workerData: { memory, ctl: this.#ctl, port: port2 }, transferList: [port2] });
    worker.unref();
  }

  get busy(): boolean {
    return this.#posted !== null;
  }

  post(msg: KernelMessage): void {
    let id = this.#ids.get(msg.kernelHash);
    this.#firstRun = id === undefined;
    this.#postedAt = performance.now();
    if (id === undefined) {
      id = this.#ids.size + 1;
      this.#ids.set(msg.kernelHash, id);
      this.#port.postMessage({ id, module: msg.module });
    }
    const c = this.#ctl;
    c.set([id, msg.begin, msg.end, msg.ptrs.length, ...msg.ptrs], 1);
    this.#posted = msg;
    Atomics.store(c, 0, POSTED);
    Atomics.notify(c, 0);
  }

  /** Waits for the posted half, or runs it here if the helper has not started it. */
  finish(): void {
    const c = this.#ctl;
    const msg = this.#posted!;
    this.#posted = null;
    if (Atomics.compareExchange(c, 0, POSTED, STOLEN) === POSTED) {
      Atomics.store(c, 0, IDLE);
      runInline(msg);
      return;
    }
    const t0 = performance.now();
    for (let spins = 0; Atomics.load(c, 0) === RUNNING; ) if (++spins > 2000) Atomics.wait(c, 0, RUNNING, 1);
    // A helper that keeps us waiting is being descheduled (other processes want the cores): fall
    // back to running kernels inline for a while, since fork-join on a busy machine loses.
    // Late means waiting long against the main thread's own half (the time since posting): halves
    // of a big kernel differ by more than a fixed few microseconds without anything being wrong.
    const waited = performance.now() - t0;
    const ownHalf = t0 - this.#postedAt;
    if (!this.#firstRun) this.#lateness = 0.9 * this.#lateness + 0.1 * (waited > 0.05 + 0.5 * ownHalf ? 1 : 0);
    if (this.#lateness > 0.3) {
      this.pausedFor = 2000;
      this.#lateness = 0;
    }
    const state = Atomics.load(c, 0);
    Atomics.store(c, 0, IDLE);
    if (state !== DONE) throw new Error("worker-shim: helper thread failed on a kernel");
  }
}

let pairHelper: PairHelper | null = null;
let workersMade = 0;
/** Set when the helper took worker 0's half of the kernel being dispatched: worker 1's half runs inline. */
let pairing = false;

/**
 * jax-js constructs its workers right after creating the blob URL, before the blob's text can be
 * read; this defers the real worker until the text is there, queueing messages meanwhile.
 */
class LazyWorker {
  readonly #index = workersMade++;
  onmessage: MessageHandler = null;
  onerror: ErrorHandler = null;
  #real: BrowserStyleWorker | null = null;
  #queue: unknown[] = [];

  constructor(url: string | URL) {
    const key = String(url);
    void blobsRead().then(() => {
      try {
        const real = new BrowserStyleWorker(key);
        real.onmessage = (e) => this.onmessage?.(e);
        real.onerror = (e) => this.onerror?.(e);
        this.#real = real;
        for (const m of this.#queue) real.postMessage(m);
        this.#queue = [];
      } catch (err) {
        this.onerror?.({ message: (err as Error).message });
      }
    });
  }

  postMessage(message: unknown): void {
    const msg = message as { type?: string; memory?: WebAssembly.Memory };
    if (msg.type === "init" && msg.memory) sharedMemory = msg.memory;
    if (msg.type === "kernel" && sharedMemory && this.#real) {
      const k = message as KernelMessage;
      const elems = k.end - k.begin;
      // jax-js posts every half of a kernel before awaiting any reply, so worker 1's half runs
      // inline while the helper works on worker 0's, and worker 0's reply waits for the helper.
      if (threads === 2 && this.#index === 0 && elems >= PAIR_MIN && elems <= PAIR_LIMIT) {
        pairHelper ??= new PairHelper(sharedMemory);
        if (pairHelper.pausedFor > 0) pairHelper.pausedFor--;
        else if (!pairHelper.busy) {
          const helper = pairHelper;
          helper.post(k);
          pairing = true;
          queueMicrotask(() => this.#reply(() => helper.finish()));
          return;
        }
      }
      const paired = pairing && this.#index === 1;
      pairing = false;
      if (elems <= INLINE_LIMIT || paired) {
        const reply = this.#reply(() => runInline(k), false);
        queueMicrotask(reply);
        return;
      }
    }
    if (this.#real) this.#real.postMessage(message);
    else this.#queue.push(message);
  }

  /**
   * Does `work` and replies as a worker would ("done", ok or not), or with `send` false returns the
   * reply to send later: the work must be done before the reply, and the reply must be async.
   */
  #reply(work: () => void, send = true): () => void {
    let data: { type: "done"; ok: boolean; error?: string };
    try {
      work();
      data = { type: "done", ok: true };
    } catch (err) {
      data = { type: "done", ok: false, error: String(err) };
    }
    const reply = () => this.onmessage?.({ data });
    if (send) reply();
    return reply;
  }

  terminate(): void {
    this.#real?.terminate();
  }
}

// jax-js creates its wasm backend, and decides whether it may use workers, when its module is first
// evaluated; so the shim installs itself on import, and runtime.ts imports this file before jax-js.
// RLHF_THREADS=1 leaves Worker undefined: jax-js then runs every kernel synchronously on the main thread.
const threads = Number(process.env.RLHF_THREADS) || availableParallelism();
if (threads > 1) installWorkerShim(threads);
