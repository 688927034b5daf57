// What the page knows of each run: everything its logs have said so far, kept current by polling
// the server for what was appended (the server tails the files; see server/jsonl-tail.ts).
import type { Cursors, EvalPoint, RunSummary, RunUpdate } from "../shared/schema.ts";
import { api } from "./api.ts";

export type Metrics = RunUpdate["metrics"];
export type Sample = RunUpdate["samples"][number];

// Distinct on light backgrounds and in the usual colour-blind simulations (Tableau 10).
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

export class Run {
  readonly color: string;
  visible = true;
  generation = -1;
  metrics: Metrics = [];
  samples: Sample[] = [];
  events: RunUpdate["events"] = [];
  rounds: RunUpdate["rounds"] = [];
  evals: EvalPoint[] = [];
  checkpoints: number[] = [];

  constructor(readonly summary: RunSummary) {
    this.color = PALETTE[summary.index % PALETTE.length]!;
  }

  get name(): string { return this.summary.name; }

  get lastStep(): number | null {
    return this.metrics.length ? (this.metrics[this.metrics.length - 1]!.step ?? null) : null;
  }

  /** The step's logged value of `metric` (the last record of that step that has it). */
  metricAt(step: number | null, metric: string): number | null {
    if (step === null) return null;
    for (let i = this.metrics.length - 1; i >= 0; i--) {
      const r = this.metrics[i]!;
      if (r.step === step && r[metric] !== undefined) return r[metric]!;
    }
    return null;
  }

  /** Fetches what was appended since the last poll; true when anything changed. */
  async poll(): Promise<boolean> {
    const cursors: Cursors = {
      generation: this.generation, metrics: this.metrics.length, samples: this.samples.length, events: this.events.length, rounds: this.rounds.length,
    };
    const u = await api.updates(this.summary.index, cursors);
    const filesChanged = JSON.stringify([u.evals, u.checkpoints]) !== JSON.stringify([this.evals, this.checkpoints]);
    this.evals = u.evals;
    this.checkpoints = u.checkpoints;
    if (u.reset) {
      this.generation = u.generation;
      this.metrics = u.metrics; this.samples = u.samples; this.events = u.events; this.rounds = u.rounds;
      return true;
    }
    // concat, not push(...): a first read of a long log would pass more arguments than a call takes.
    this.metrics = this.metrics.concat(u.metrics); this.samples = this.samples.concat(u.samples);
    this.events = this.events.concat(u.events); this.rounds = this.rounds.concat(u.rounds);
    return filesChanged || u.metrics.length + u.samples.length + u.events.length + u.rounds.length > 0;
  }
}
