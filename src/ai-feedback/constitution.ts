// A constitution (Bai et al. 2022b, "Constitutional AI"): a list of principles, one drawn at random
// for each comparison or critique, so that no single wording decides every label. File formats:
//   .json   a JSON list of strings
//   other   one principle per non-blank line (lines starting with "#" are comments)
import { HostRng } from "../engine/random.ts";
import { InputError } from "../io/errors.ts";
import { numberedLines, readInputText } from "../io/text-file.ts";

export class ConstitutionError extends InputError {}

export function readConstitution(path: string): string[] {
  const text = readInputText(path, "constitution file");
  let principles: string[];
  if (/\.json$/.test(path)) {
    let list: unknown;
    try {
      list = JSON.parse(text);
    } catch (err) {
      throw new ConstitutionError(`${path}: not valid JSON (${(err as Error).message}); expected a list of principle strings`);
    }
    if (!Array.isArray(list)) throw new ConstitutionError(`${path}: expected a JSON list of principle strings`);
    list.forEach((p, i) => {
      if (typeof p !== "string" || p.trim() === "") throw new ConstitutionError(`${path}: principle ${i + 1} must be a non-empty string`);
    });
    principles = (list as string[]).map((p) => p.trim());
  } else {
    principles = numberedLines(text).map((l) => l.text.trim()).filter((t) => !t.startsWith("#"));
  }
  if (principles.length === 0) throw new ConstitutionError(`${path}: no principles`);
  return principles;
}

/** `n` principles drawn uniformly with replacement from one seeded stream: draw i depends only on the seed and i. */
export function drawPrinciples(principles: string[], n: number, seed: number): string[] {
  const rng = new HostRng(seed);
  return Array.from({ length: n }, () => principles[rng.int(principles.length)]!);
}
