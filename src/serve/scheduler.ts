// The server's one decoding loop. Requests queue here; each step, waiting requests join the running
// batch while rows are free (continuous batching: a request that arrives mid-generation starts at
// the next step), every running choice gets one token from one batched forward pass (of a DecodeRows:
// jax-js's row batch or llama.cpp's sequences) sampled here from its logits (or drawn by an engine
// that samples, for a choice that reads nothing but its token), and finished or cancelled choices
// leave at once, freeing their rows. A choice's tokens depend only on its own
// request and seed (its own random stream, its own cache row), never on what else is in the batch.
import { HostRng } from "../engine/random.ts";
import type { DecodeRows, EngineDraw } from "../generation/decode-rows.ts";
import { logSoftmax, sampleToken } from "../generation/sampling.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { TextStream } from "./text-stream.ts";

export type FinishReason = "stop" | "length";

/** A sampled token with its log-probability under the model (before temperature and top-p) and the most likely alternatives. */
export interface SampledToken {
  id: number;
  logprob: number;
  top: { id: number; logprob: number }[];
}

/** One sampled token of one choice: the text it makes safe to send, and the finish reason on the last. */
export interface ChoiceEvent {
  choice: number;
  token: SampledToken;
  /** The end-of-sequence token: it ends the choice and adds no text. */
  eos: boolean;
  text: string;
  finishReason: FinishReason | null;
}

/** How a request's choices are sampled (OpenAI's fields, resolved to values). */
export interface SamplingParams {
  /** Choices sampled from the prompt (OpenAI's n), each in its own row. */
  n: number;
  temperature: number;
  topP: number;
  seed: number;
  maxTokens: number;
  stop: string[];
  /** Alternatives reported per token; null: no log-probabilities at all. */
  topLogprobs: number | null;
}

export interface GenerationRequest extends SamplingParams {
  promptIds: number[];
  onEvent(event: ChoiceEvent): void;
}

export interface Submitted {
  /** Stops every choice of the request; their rows are freed before the next step. */
  cancel(): void;
  /** Settles when every choice has finished or the request was cancelled. */
  done: Promise<void>;
}

interface Choice {
  request: Queued;
  index: number;
  rng: HostRng;
  ids: number[];
  text: TextStream;
  /** Next-token logits, set by the last forward pass that read this choice. */
  logits: Float32Array | null;
}

interface Queued {
  spec: GenerationRequest;
  cancelled: boolean;
  remaining: number;
  settle: { resolve(): void; reject(err: unknown): void };
}

export interface SchedulerOptions {
  /** Rows at most (choices generated at once); more wait for a free row. */
  maxRows: number;
  /** Cache slots per row: prompt + completion tokens at most. */
  contextLength: number;
}

export class Scheduler {
  readonly maxRows: number;
  readonly contextLength: number;
  /** Forward passes so far, the rows they carried in all (their ratio is the mean batch), prompts read, choices cancelled mid-generation. */
  readonly stats = { steps: 0, rowSteps: 0, prefills: 0, cancelled: 0 };
  readonly #batch: DecodeRows;
  readonly #tokenizer: Tokenizer;
  readonly #eos: Set<number>;
  readonly #vocab: number;
  readonly #sampleable: number;
  readonly #waiting: Queued[] = [];
  #rows: (Choice | null)[] = [];
  /** The decoding loop while it runs (engine failures end its requests, not it). */
  #loop: Promise<void> | null = null;
  #disposed: Promise<void> | null = null;

  /**
   * Decodes on `batch` (the scheduler's from now on: dispose() frees it), whose rows have
   * `vocabSize` logits, at least maxRows rows and contextLength tokens each.
   */
  constructor(batch: DecodeRows, vocabSize: number, tokenizer: Tokenizer, eosTokenIds: number[], options: SchedulerOptions) {
    this.maxRows = options.maxRows;
    this.contextLength = options.contextLength;
    this.#batch = batch;
    this.#tokenizer = tokenizer;
    this.#eos = new Set(eosTokenIds);
    this.#vocab = vocabSize;
    // A padded vocabulary has rows no text maps to (see Generator.generate).
    this.#sampleable = Math.min(vocabSize, tokenizer.vocabSize);
  }

  /** Choices in the batch now. */
  get activeChoices(): number {
    return this.#rows.filter(Boolean).length;
  }

  submit(spec: GenerationRequest): Submitted {
    if (this.#disposed) throw new Error("the scheduler is closed");
    if (spec.n < 1 || spec.n > this.maxRows) throw new RangeError(`n must be between 1 and ${this.maxRows}`);
    if (spec.promptIds.length + spec.maxTokens > this.contextLength) throw new RangeError("prompt + max tokens exceed the context");
    let settle!: Queued["settle"];
    const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    const queued: Queued = { spec, cancelled: false, remaining: spec.n, settle };
    this.#waiting.push(queued);
    // On the next turn of the event loop, so requests that arrive together start together.
    this.#loop ??= new Promise((resolve) => setImmediate(resolve)).then(() => this.#run());
    return {
      cancel: () => {
        if (queued.cancelled || queued.remaining === 0) return;
        queued.cancelled = true;
        queued.settle.resolve();
      },
      done,
    };
  }

  async #run(): Promise<void> {
    try {
      while (this.#waiting.length > 0 || this.activeChoices > 0) {
        // The engine's reads resolve without a trip through the event loop; without this turn, no
        // chunk would reach its socket, no request join and no disconnect be seen until the batch ended.
        await new Promise((resolve) => setImmediate(resolve));
        this.#dropCancelled();
        await this.#admit();
        this.#sampleAll();
        if (this.activeChoices === 0) continue;
        this.#compact();
        const active = this.#rows.map(Boolean);
        const tokens = Int32Array.from(this.#rows, (c) => c?.ids.at(-1) ?? 0); // each choice's last token
        const logits = await this.#batch.step(tokens, active, this.#rows.map((c) => this.#engineDraw(c)));
        this.stats.steps++;
        this.stats.rowSteps += active.filter(Boolean).length;
        const v = this.#vocab;
        this.#rows.forEach((c, r) => c && (c.logits = logits.subarray(r * v, (r + 1) * v)));
      }
      if (this.#disposed) return;
      this.#batch.arrange([]);
      this.#rows = [];
    } catch (err) {
      // An engine failure ends every request in flight; the next request starts a fresh batch.
      for (const q of new Set([...this.#waiting, ...this.#rows.flatMap((c) => (c ? [c.request] : []))])) q.settle.reject(err);
      this.#waiting.length = 0;
      this.#rows = [];
      this.#batch.arrange([]);
    } finally {
      // At once, in the step that saw no work left: a request submitted after this starts a new loop.
      this.#loop = null;
    }
  }

  #dropCancelled(): void {
    this.#rows.forEach((c, r) => {
      if (!c?.request.cancelled) return;
      this.#free(r);
      this.stats.cancelled++;
    });
    for (let i = this.#waiting.length - 1; i >= 0; i--) if (this.#waiting[i]!.cancelled) this.#waiting.splice(i, 1);
  }

  /**
   * Waiting requests in arrival order, each once all its n choices fit, the batch growing by powers
   * of two up to maxRows; the prompts admitted together are read together.
   */
  async #admit(): Promise<void> {
    const admitted: Queued[] = [];
    let needed = this.activeChoices;
    while (this.#waiting.length > 0 && needed + this.#waiting[0]!.spec.n <= this.maxRows) {
      const q = this.#waiting.shift()!;
      admitted.push(q);
      needed += q.spec.n;
    }
    if (admitted.length === 0) return;
    if (needed > this.#rows.length) {
      const size = Math.min(this.maxRows, nextPowerOfTwo(needed));
      const before = this.#rows.length;
      this.#batch.arrange([...this.#rows.map((_, r) => r), ...new Array<number>(size - before).fill(-1)]);
      this.#rows.length = size;
      this.#rows.fill(null, before);
    }
    const free = this.#rows.flatMap((c, r) => (c ? [] : [r]));
    const prompts = admitted.map((q) => ({ ids: q.spec.promptIds, rows: free.splice(0, q.spec.n), reach: q.spec.promptIds.length + q.spec.maxTokens }));
    const logits = await this.#batch.insert(prompts);
    this.stats.prefills += admitted.length;
    admitted.forEach((q, i) => {
      const seeds = new HostRng(q.spec.seed);
      prompts[i]!.rows.forEach((r, index) => {
        this.#rows[r] = {
          request: q, index, rng: new HostRng(seeds.nextUint32()), ids: [],
          text: new TextStream(this.#tokenizer, q.spec.promptIds, q.spec.stop), logits: logits[i]!,
        };
      });
    });
  }

  /** One token for every choice with fresh logits; finished choices leave their rows. */
  #sampleAll(): void {
    this.#rows.forEach((c, r) => {
      if (!c?.logits || c.request.cancelled) return;
      const { spec } = c.request;
      const logits = c.logits.subarray(0, this.#sampleable);
      c.logits = null;
      const { id } = sampleToken(logits, { temperature: spec.temperature, topK: 0, topP: spec.topP }, c.rng);
      const token: SampledToken = { id, logprob: NaN, top: [] };
      if (spec.topLogprobs !== null) Object.assign(token, modelLogprobs(logits, id, spec.topLogprobs));
      const eos = this.#eos.has(id);
      let text = "";
      let finishReason: FinishReason | null = null;
      if (eos) {
        finishReason = "stop";
        text = c.text.flush();
      } else {
        c.ids.push(id);
        const pushed = c.text.push(c.ids);
        text = pushed.delta;
        if (pushed.stopped) finishReason = "stop";
        else if (c.ids.length >= spec.maxTokens) {
          finishReason = "length";
          text += c.text.flush();
        }
      }
      spec.onEvent({ choice: c.index, token, eos, text, finishReason });
      if (finishReason) {
        this.#free(r);
        if (--c.request.remaining === 0) c.request.settle.resolve();
      }
    });
  }

  /**
   * The token an engine may draw itself for a choice that reads nothing else (no log-probs), over
   * the whole vocabulary (an engine's draw may be a padding row otherwise): greedy on any engine;
   * sampled on one that samples (llama.cpp), seeded from the choice's own stream, so a seed gives
   * the same samples again on that engine, though not jax-js's.
   */
  #engineDraw(c: Choice | null): EngineDraw | null {
    if (c === null || c.request.spec.topLogprobs !== null || this.#sampleable !== this.#vocab) return null;
    const { temperature, topP } = c.request.spec;
    if (temperature === 0) return { temperature: 0, topP: 1, seed: 0 };
    return this.#batch.samplesDraws ? { temperature, topP, seed: c.rng.nextUint32() } : null;
  }

  #free(r: number): void {
    this.#rows[r] = null;
    this.#batch.clear(r);
  }

  /** Halves the batch (or more) when at most half its rows are busy, so a lone stream is not computed eight times over. */
  #compact(): void {
    const busy = this.#rows.flatMap((c, r) => (c ? [r] : []));
    const size = nextPowerOfTwo(busy.length);
    if (size >= this.#rows.length) return;
    const from = [...busy, ...new Array<number>(size - busy.length).fill(-1)];
    this.#batch.arrange(from);
    this.#rows = from.map((r) => (r < 0 ? null : this.#rows[r]!));
  }

  /** Cancels every request; settles once the batch's memory is freed (after the step in flight, if any). */
  dispose(): Promise<void> {
    if (this.#disposed) return this.#disposed;
    for (const q of [...this.#waiting, ...this.#rows.flatMap((c) => (c ? [c.request] : []))]) {
      q.cancelled = true;
      q.settle.resolve();
    }
    this.#waiting.length = 0;
    this.#disposed = Promise.resolve(this.#loop).then(() => this.#batch.dispose());
    return this.#disposed;
  }
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** The token's log-probability and the k most likely tokens', from the model's own distribution (temperature 1). */
function modelLogprobs(logits: Float32Array, id: number, k: number): Pick<SampledToken, "logprob" | "top"> {
  const logp = logSoftmax(logits, 1);
  const top: SampledToken["top"] = [];
  if (k > 0) {
    const order = Array.from(logp.keys()).sort((a, b) => logp[b]! - logp[a]!);
    for (const i of order.slice(0, k)) top.push({ id: i, logprob: logp[i]! });
  }
  return { logprob: logp[id]!, top };
}
