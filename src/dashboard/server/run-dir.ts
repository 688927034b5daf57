// One run directory as the dashboard follows it: a tail of each of its logs, and its evaluations.
import { basename, join, resolve } from "node:path";
import type { z } from "zod";
import {
  EventRecord, LOG_FILES, LOGS, MetricRecord, RoundRecord, SampleRecord, type Cursors, type LogName, type RunUpdate,
} from "../shared/schema.ts";
import { checkpoints, readEvals } from "./evals.ts";
import { JsonlTail } from "./jsonl-tail.ts";

const parser = <S extends z.ZodType>(schema: S) => (value: unknown): z.output<S> | undefined => {
  const r = schema.safeParse(value);
  return r.success ? r.data : undefined;
};

export class RunDir {
  readonly path: string;
  readonly logs: { metrics: JsonlTail<MetricRecord>; samples: JsonlTail<SampleRecord>; events: JsonlTail<EventRecord>; rounds: JsonlTail<RoundRecord> };

  constructor(path: string) {
    this.path = resolve(path);
    const tail = <S extends z.ZodType>(log: LogName, schema: S) => new JsonlTail(join(this.path, LOG_FILES[log]), parser(schema));
    this.logs = { metrics: tail("metrics", MetricRecord), samples: tail("samples", SampleRecord), events: tail("events", EventRecord), rounds: tail("rounds", RoundRecord) };
  }

  get name(): string {
    return basename(this.path);
  }

  // Generations count from the server's start time, so a page that outlives a restarted server
  // (whose files may have been replaced meanwhile) holds a generation the new one never had.
  readonly #epoch = Date.now();

  /** The server's epoch plus the logs' restarts: a reader holding another generation must start again from 0. */
  get generation(): number {
    return LOGS.reduce((sum, log) => sum + this.logs[log].generation, this.#epoch);
  }

  /** What was appended since the reader's cursors (or everything, when a file was replaced since its generation). */
  update(q: Cursors): RunUpdate {
    for (const log of LOGS) this.logs[log].poll();
    const reset = q.generation !== this.generation;
    const from = (log: LogName) => (reset ? 0 : q[log]);
    return {
      generation: this.generation,
      reset,
      metrics: this.logs.metrics.records.slice(from("metrics")),
      samples: this.logs.samples.records.slice(from("samples")),
      events: this.logs.events.records.slice(from("events")),
      rounds: this.logs.rounds.records.slice(from("rounds")),
      evals: readEvals(this.path),
      checkpoints: checkpoints(this.path).map((c) => c.step),
    };
  }
}
