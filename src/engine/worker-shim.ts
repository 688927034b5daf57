// jax-js's wasm backend runs kernels on a pool of Web Workers created from a blob: URL, with the
// browser API (`new Worker(url, {type: "module"})`, `onmessage`, `postMessage`, `self`). Node 20 has
// no global Worker, and the maintained npm shim (`web-worker`) only accepts file: URLs, so this maps
// the small part of the API jax-js uses onto node:worker_threads. Measured: 1.3x faster training
// steps on 2 cores than running kernels on the main thread.
import { Worker as NodeWorker } from "node:worker_threads";
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
 * jax-js constructs its workers right after creating the blob URL, before the blob's text can be
 * read; this defers the real worker until the text is there, queueing messages meanwhile.
 */
class LazyWorker {
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
      if (k.end - k.begin <= INLINE_LIMIT) {
        // Same contract as a worker: the work is done before the reply, and the reply is async.
        let reply: { type: "done"; ok: boolean; error?: string };
        try {
          runInline(k);
          reply = { type: "done", ok: true };
        } catch (err) {
          reply = { type: "done", ok: false, error: String(err) };
        }
        queueMicrotask(() => this.onmessage?.({ data: reply }));
        return;
      }
    }
    if (this.#real) this.#real.postMessage(message);
    else this.#queue.push(message);
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
