// DIR/metrics.jsonl: one JSON object per logging (or evaluation) step, with TRL's metric names.
// Appends are plain writes without fsync (a lost last line after a power cut is harmless); on
// resume the lines past the checkpoint's step are dropped so the file reads like one clean run.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { appendToFileSync, writeFileAtomicSync } from "../io/atomic.ts";

/** One record of metrics.jsonl; the names are listed, per trainer, in src/algorithms/METRICS.md. */
export type MetricRecord = Record<string, number>;

export class MetricsLog {
  readonly path: string;

  constructor(outputDir: string) {
    this.path = join(outputDir, "metrics.jsonl");
  }

  append(record: MetricRecord): void {
    appendToFileSync(this.path, JSON.stringify(record) + "\n");
  }

  /** Every record written so far (a torn last line is skipped). */
  read(): MetricRecord[] {
    if (!existsSync(this.path)) return [];
    const out: MetricRecord[] = [];
    for (const line of readFileSync(this.path, "utf8").split("\n")) {
      if (line.trim() === "") continue;
      try {
        out.push(JSON.parse(line) as MetricRecord);
      } catch {
        // Only the last line can be torn (a crash mid-append); later lines cannot exist.
      }
    }
    return out;
  }

  /** Drops records from steps after `step` (written by a run that crashed before its next checkpoint). */
  truncateAfter(step: number): void {
    if (!existsSync(this.path)) return;
    const kept = this.read().filter((r) => (r.step ?? 0) <= step);
    writeFileAtomicSync(this.path, kept.map((r) => JSON.stringify(r) + "\n").join(""));
  }
}
