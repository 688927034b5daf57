// Training progress: a redrawn bar with loss and throughput on a terminal, plain log lines
// otherwise (CI logs, files), so piped output never fills with carriage returns.

export interface ProgressUpdate {
  step: number;
  loss: number;
  tokensPerSecond: number;
  learningRate: number;
}

export class Progress {
  readonly #total: number;
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #started = performance.now();
  readonly #firstStep: number;
  #drawn = false;

  constructor(total: number, options: { firstStep?: number; out?: NodeJS.WriteStream; tty?: boolean } = {}) {
    this.#total = total;
    this.#out = options.out ?? process.stderr;
    this.#tty = options.tty ?? this.#out.isTTY === true;
    this.#firstStep = options.firstStep ?? 0;
  }

  /** True when drawing a bar on a terminal (log records are then not printed as lines). */
  get interactive(): boolean {
    return this.#tty;
  }

  /** Redraws the bar (terminal only); call every step. */
  tick(u: ProgressUpdate): void {
    if (!this.#tty) return;
    const width = 24;
    const done = Math.round((width * u.step) / Math.max(1, this.#total));
    const bar = "█".repeat(done) + "░".repeat(width - done);
    this.#out.write(`\r\x1b[K${bar} ${u.step}/${this.#total}  loss ${fmt(u.loss)}  ${Math.round(u.tokensPerSecond)} tok/s  lr ${u.learningRate.toExponential(2)}  eta ${this.#eta(u.step)}`);
    this.#drawn = true;
  }

  /** A line that stays: a log record on a pipe, or a message above the bar on a terminal. */
  line(text: string): void {
    if (this.#tty && this.#drawn) this.#out.write("\r\x1b[K");
    this.#out.write(text + "\n");
  }

  /** The plain log line for a logging step, when not on a terminal. */
  log(record: Record<string, number>): void {
    if (this.#tty) return;
    const parts = Object.entries(record).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : fmt(v)}`);
    this.line(parts.join(" "));
  }

  finish(): void {
    if (this.#tty && this.#drawn) this.#out.write("\n");
    this.#drawn = false;
  }

  #eta(step: number): string {
    const done = step - this.#firstStep;
    if (done <= 0) return "?";
    const seconds = (((performance.now() - this.#started) / 1000) * (this.#total - step)) / done;
    const m = Math.floor(seconds / 60);
    return m > 0 ? `${m}m${String(Math.round(seconds % 60)).padStart(2, "0")}s` : `${Math.round(seconds)}s`;
  }
}

function fmt(x: number): string {
  return Math.abs(x) >= 1e-3 || x === 0 ? x.toFixed(4) : x.toExponential(3);
}
