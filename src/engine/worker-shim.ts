// jax-js's wasm backend runs kernels on a pool of Web Workers created from a blob: URL, with the
// browser API (`new Worker(url, {type: "module"})`, `onmessage`, `postMessage`, `self`). Node 20 has
// no global Worker, and the maintained npm shim (`web-worker`) only accepts file: URLs, so this
// provides the small part of the API jax-js uses. Kernel chunks run on the main thread and helper
// threads sharing the wasm memory (kernel-threads.ts), not behind postMessage: a decode step
// dispatches ~100 small kernels, and a message round trip per chunk cost more than the work.
import { Worker as NodeWorker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import { KernelThreads, MAX_CHUNKS, type KernelChunk } from "./kernel-threads.ts";

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
/** Threads besides the main one that run kernel chunks. */
let helperThreads = 0;

/** Threads that run wasm kernels (the main thread and its helpers). */
export function kernelThreadCount(): number {
  return helperThreads + 1;
}

/**
 * Installs a global `Worker` (and `navigator.hardwareConcurrency`, which sizes jax-js's pool) if the
 * runtime lacks them. Call before `init("wasm")`.
 */
export function installWorkerShim(threads = availableParallelism()): void {
  if (installed) return;
  installed = true;
  helperThreads = threads - 1;
  const g = globalThis as Record<string, unknown>;
  if (typeof g.navigator === "undefined") {
    g.navigator = { hardwareConcurrency: chunksPerKernel(threads) };
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
 * jax-js cuts a kernel into one aligned chunk per worker it believes it has (at least 512 elements
 * each). It is told of twice as many workers as there are threads, so a kernel arrives in several
 * chunks that the main thread and the helpers claim one at a time (kernel-threads.ts); measured on
 * the standard benchmark (2 threads), 4 chunks beat 2, 8 and 16 by 3–10%. RLHF_KERNEL_CHUNKS
 * overrides the count.
 */
function chunksPerKernel(threads: number): number {
  return Math.min(MAX_CHUNKS, Number(process.env.RLHF_KERNEL_CHUNKS) || 2 * threads);
}

/**
 * Kernels smaller than this (elements in all) run on the main thread alone: waking a helper costs
 * about what the work does. Measured on the standard benchmark's decode step (2 cores).
 */
const SHARE_MIN = 2048;

let sharedMemory: WebAssembly.Memory | null = null;
let kernelThreads: KernelThreads | null = null;

interface KernelMessage extends KernelChunk {
  type: "kernel";
}

/** Chunks of the kernel being dispatched, each with the worker that must answer for it. */
let pending: { worker: LazyWorker; chunk: KernelMessage }[] = [];

/**
 * jax-js posts every chunk of a kernel synchronously and then awaits one "done" per worker, so the
 * chunks are gathered and run together in a microtask, and each worker answers afterwards.
 */
function runPendingKernel(): void {
  const batch = pending;
  pending = [];
  let data: { type: "done"; ok: boolean; error?: string };
  try {
    kernelThreads ??= new KernelThreads(sharedMemory!, helperThreads);
    const total = batch.reduce((n, { chunk }) => n + chunk.end - chunk.begin, 0);
    kernelThreads.run(
      batch.map((p) => p.chunk),
      total >= SHARE_MIN,
    );
    data = { type: "done", ok: true };
  } catch (err) {
    data = { type: "done", ok: false, error: String(err) };
  }
  for (const { worker } of batch) worker.onmessage?.({ data });
}

/**
 * A worker as jax-js sees it. Kernel chunks never leave the main process's threads (see above);
 * only CPU routines (sort, scatter, …), which jax-js sends to its first worker, go to a real worker
 * thread running jax-js's own worker source, started on first use.
 */
class LazyWorker {
  onmessage: MessageHandler = null;
  onerror: ErrorHandler = null;
  readonly #url: string;
  #init: unknown = null;
  #real: BrowserStyleWorker | null = null;
  #starting: Promise<void> | null = null;

  constructor(url: string | URL) {
    this.#url = String(url);
  }

  postMessage(message: unknown): void {
    const msg = message as { type?: string; memory?: WebAssembly.Memory };
    if (msg.type === "init") {
      sharedMemory = msg.memory ?? null;
      this.#init = message;
      queueMicrotask(() => this.onmessage?.({ data: { type: "ready" } }));
      return;
    }
    if (msg.type === "kernel") {
      if (pending.length === 0) queueMicrotask(runPendingKernel);
      pending.push({ worker: this, chunk: message as KernelMessage });
      return;
    }
    void this.#forward(message);
  }

  async #forward(message: unknown): Promise<void> {
    this.#starting ??= blobsRead().then(() => {
      const real = new BrowserStyleWorker(this.#url);
      let ready = false;
      // The real worker's "ready" answers our init, which jax-js already had answered.
      real.onmessage = (e) => (ready ? this.onmessage?.(e) : (ready = true));
      real.onerror = (e) => this.onerror?.(e);
      real.postMessage(this.#init);
      this.#real = real;
    });
    try {
      await this.#starting;
      this.#real!.postMessage(message);
    } catch (err) {
      this.onerror?.({ message: (err as Error).message });
    }
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
