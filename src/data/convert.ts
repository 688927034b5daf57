// `rlhf data convert`: public preference data → TRL-format JSON lines, with an account of every
// record that did not make it.
import { gzipSync } from "node:zlib";
import { writeFileAtomic } from "../io/atomic.ts";
import { readRecordLines } from "./datasets.ts";
import { describeValue, type Json } from "./formats.ts";
import { dropReasons, splitHhRecord, type DropReason } from "./hh-rlhf.ts";
import { readRtPolarity } from "./rt-polarity.ts";

export interface Dropped {
  reason: string;
  description: string;
  count: number;
  /** file:line of the first such record, and what was wrong with it. */
  first: string;
}

export interface Conversion {
  records: Json[];
  read: number;
  dropped: Dropped[];
}

/** An HH-RLHF file (.jsonl or .jsonl.gz of {"chosen", "rejected"} transcripts) → conversational preference records. */
export function convertHhRlhf(path: string, onProgress?: (done: number, total: number) => void): Conversion {
  const lines = readRecordLines(path);
  const records: Json[] = [];
  const dropped = new Map<DropReason, Dropped>();
  const drop = (reason: DropReason, where: string, detail: string) => {
    const d = dropped.get(reason) ?? { reason, description: dropReasons[reason], count: 0, first: `${where}: ${detail}` };
    d.count++;
    dropped.set(reason, d);
  };
  lines.forEach((line, i) => {
    onProgress?.(i, lines.length);
    if ("invalid" in line) return drop("malformed", line.where, line.invalid);
    const r = line.record as unknown;
    if (typeof r !== "object" || r === null || Array.isArray(r)) return drop("malformed", line.where, `expected a JSON object, got ${describeValue(r)}`);
    const result = splitHhRecord(line.record);
    if ("drop" in result) drop(result.drop, line.where, result.detail);
    else records.push({ ...result.pair });
  });
  onProgress?.(lines.length, lines.length);
  return { records, read: lines.length, dropped: [...dropped.values()] };
}

/** The rt-polarity folder → implicit-prompt pairs {"chosen": positive, "rejected": negative}. */
export function convertRtPolarity(dir: string): Conversion {
  const { pairs, unpaired } = readRtPolarity(dir);
  const dropped = unpaired > 0 ? [{ reason: "unpaired", description: "blank line, or no line at the same number in the other file", count: unpaired, first: dir }] : [];
  return { records: pairs.map(({ chosen, rejected }) => ({ chosen, rejected })), read: pairs.length + unpaired, dropped };
}

/** JSON lines, gzipped when the name ends in .gz, written atomically (a reader never sees half a file). */
export async function writeJsonLines(path: string, records: readonly Json[]): Promise<void> {
  const text = records.map((r) => JSON.stringify(r)).join("\n") + "\n";
  await writeFileAtomic(path, path.endsWith(".gz") ? gzipSync(text) : text);
}
