// The layout of a loop's run directory, and its done-markers:
//   OUT/config.json            the config with its paths resolved (what `rlhf loop resume` reads)
//   OUT/round-N/               one round: samples, comparisons, labels, rm/, dpo/ (or ppo/, online-dpo/), eval.json
//   OUT/round-N/STAGE.done     written (atomically) after the stage's outputs, so a stage with a
//                              marker is finished and never run again
//   OUT/rounds.jsonl           one line per finished round, rewritten from the rounds' eval.json
//   OUT/policy                 the last round's policy
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { DataError, readRecordLines } from "../data/datasets.ts";
import { writeFileAtomic } from "../io/atomic.ts";

export const STAGES = ["sample", "label", "rm", "policy", "eval"] as const;
export type Stage = (typeof STAGES)[number];

export const roundDir = (out: string, round: number) => join(out, `round-${round}`);
export const configCopy = (out: string) => join(out, "config.json");
export const roundsFile = (out: string) => join(out, "rounds.jsonl");

const marker = (out: string, round: number, stage: Stage) => join(roundDir(out, round), `${stage}.done`);

export const isDone = (out: string, round: number, stage: Stage) => existsSync(marker(out, round, stage));

export async function markDone(out: string, round: number, stage: Stage): Promise<void> {
  await writeFileAtomic(marker(out, round, stage), new Date().toISOString() + "\n");
}

/** One round's line of rounds.jsonl. */
export interface RoundRecord {
  round: number;
  /** Comparisons labeled this round (by the labeler, and by `rest` when configured), and all so far. */
  labels: number;
  labels_total: number;
  rm_accuracy: number;
  reward: number;
  kl: number;
  win_rate: number;
  win_rate_vs_previous: number;
  gold?: number;
  gold_reference?: number;
  rm_gold_accuracy?: number;
  [field: string]: unknown;
}

export const evalFile = (out: string, round: number) => join(roundDir(out, round), "eval.json");

/** The finished rounds' records, in order. */
export function finishedRounds(out: string): RoundRecord[] {
  const records: RoundRecord[] = [];
  for (let r = 0; existsSync(evalFile(out, r)); r++) records.push(JSON.parse(readFileSync(evalFile(out, r), "utf8")) as RoundRecord);
  return records;
}

export async function writeRoundsFile(out: string): Promise<void> {
  await writeFileAtomic(roundsFile(out), finishedRounds(out).map((r) => JSON.stringify(r) + "\n").join(""));
}

/** JSON lines the loop wrote itself, as objects. */
export function readJsonLines<T>(path: string): T[] {
  // A stage may rightly write none (a round whose judge verdicts all failed).
  if (statSync(path).size === 0) return [];
  return readRecordLines(path).map((l) => {
    if (!("record" in l)) throw new DataError(`${l.where}: ${l.invalid}`);
    return l.record as T;
  });
}

export const jsonLines = (records: readonly unknown[]) => records.map((r) => JSON.stringify(r) + "\n").join("");
