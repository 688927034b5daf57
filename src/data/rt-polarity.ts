// The rt-polarity folder (Pang & Lee's sentence polarity data) as preference pairs: line i of
// rt-polarity.pos chosen over line i of rt-polarity.neg, no prompt (TRL's implicit-prompt form).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DataError } from "./formats.ts";

export interface TextPair {
  chosen: string;
  rejected: string;
  /** file:line of the chosen sentence. */
  where: string;
}

/**
 * Cornell's v1.0 release is Latin-1, but copies in circulation were re-encoded to UTF-8 (the one in
 * ../shared/data is): decoding UTF-8 as Latin-1 would turn "clichés" into "clichÃ©s", and Latin-1
 * is almost never valid UTF-8, so try UTF-8 strictly first.
 */
export function decodeUtf8OrLatin1(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return Buffer.from(bytes).toString("latin1");
  }
}

export function isRtPolarityDir(dir: string): boolean {
  return existsSync(join(dir, "rt-polarity.pos")) && existsSync(join(dir, "rt-polarity.neg"));
}

/** The pairs, and how many lines were left out (blank on either side, or beyond the shorter file). */
export function readRtPolarity(dir: string): { pairs: TextPair[]; unpaired: number } {
  if (!isRtPolarityDir(dir)) throw new DataError(`${dir}: a folder must hold rt-polarity.pos and rt-polarity.neg`);
  const [posPath, negPath] = [join(dir, "rt-polarity.pos"), join(dir, "rt-polarity.neg")];
  const lines = (p: string) => decodeUtf8OrLatin1(readFileSync(p)).replace(/\n$/, "").split("\n").map((l) => l.trim());
  const [pos, neg] = [lines(posPath), lines(negPath)];
  const n = Math.min(pos.length, neg.length);
  const pairs: TextPair[] = [];
  // Pair by line number first, then drop blanks, so one blank line cannot shift every pair after it.
  for (let i = 0; i < n; i++) if (pos[i] && neg[i]) pairs.push({ chosen: pos[i]!, rejected: neg[i]!, where: `${posPath}:${i + 1}` });
  if (pairs.length === 0) throw new DataError(`${dir}: no sentence pairs in rt-polarity.pos / rt-polarity.neg`);
  return { pairs, unpaired: Math.max(pos.length, neg.length) - pairs.length };
}
