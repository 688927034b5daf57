// A reward-model ensemble on disk: one directory holding `ensemble.json` and its members
// `member-0` … `member-(N-1)`, each a reward model as `rlhf rm train` writes it. ensemble.json is
// written last, once every member is trained, so a directory that has it is complete; everything
// that takes a reward model (the RL trainers' --reward, eval, pairs, the loop) reads it as one.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { HostRng } from "../engine/random.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { InputError } from "../io/errors.ts";
import { readRewardStats, REWARD_STATS_FILE } from "./reward-stats.ts";

export const ENSEMBLE_FILE = "ensemble.json";

export interface EnsembleManifest {
  /** Member directories, relative to the ensemble's. */
  members: string[];
  /** Member i was trained with seed + i. */
  seed: number;
  /** Whether each member trained on its own bootstrap resample of the training pairs. */
  bootstrap: boolean;
  /** Held-out accuracy of each member and of the members' mean score (absent without held-out pairs). */
  eval?: { member_accuracy: number[]; accuracy: number; n: number };
}

export const memberName = (i: number): string => `member-${i}`;

export function isEnsembleDir(dir: string): boolean {
  return existsSync(join(dir, ENSEMBLE_FILE));
}

/** The ensemble's manifest, or null when `dir` is not an ensemble; a member that is missing is an error naming it. */
export function readEnsemble(dir: string): EnsembleManifest | null {
  const path = join(dir, ENSEMBLE_FILE);
  if (!existsSync(path)) return null;
  const manifest = JSON.parse(readFileSync(path, "utf8")) as EnsembleManifest;
  if (!Array.isArray(manifest.members) || manifest.members.length === 0 || manifest.members.some((m) => typeof m !== "string")) {
    throw new InputError(`${path}: "members" must list the member directories (as \`rlhf rm train --ensemble N\` writes it)`);
  }
  for (const m of manifest.members) if (!existsSync(join(dir, m, "config.json")) && !existsSync(join(dir, m, "adapter_config.json"))) throw new InputError(`${path}: member ${m} has no model in ${join(dir, m)}`);
  return manifest;
}

/** The members' directories of an ensemble directory, or null when it is not one. */
export function ensembleMemberDirs(dir: string): string[] | null {
  return readEnsemble(dir)?.members.map((m) => join(dir, m)) ?? null;
}

export function writeEnsemble(dir: string, manifest: EnsembleManifest): Promise<void> {
  return writeFileAtomic(join(dir, ENSEMBLE_FILE), JSON.stringify(manifest, null, 2) + "\n");
}

/**
 * Each member's mean score on its own training responses (its reward_stats.json), subtracted from
 * its scores before they are combined: a Bradley-Terry model fixes a reward only up to a constant,
 * so members trained alike still sit at different offsets (on rt-polarity, −1.21 and +1.01), and
 * uncentred, that offset alone would be most of their "disagreement".
 */
export function memberOffsets(memberDirs: readonly string[]): number[] {
  return memberDirs.map((dir) => {
    const stats = readRewardStats(dir);
    if (!stats) throw new InputError(`${dir} has no ${REWARD_STATS_FILE}, which an ensemble member needs to be centred (rlhf rm stats --model ${dir} --data FILE writes it)`);
    return stats.mean;
  });
}

/** As many records as given, drawn with replacement (a bootstrap resample; Efron 1979), deterministic in `seed`. */
export function bootstrapSample<T>(records: readonly T[], seed: number): T[] {
  const rng = new HostRng(seed).fork();
  return records.map(() => records[rng.nextUint32() % records.length]!);
}
