// The judge's answers, kept so that a rerun (after a crash, with more data, with another output
// format) asks nothing twice. One JSON line per answer, appended as it arrives: {"key", "verdict",
// "rationale", "p_a"}; the key is a SHA-256 of everything the answer depends on (the judge's
// source and model, the template's text, the question, the two answers in their order, the
// principle). A torn last line from a killed run is skipped. Failures are not cached. The judge
// is named by its URL or path and model name, not its weights: a judge changed in place needs a
// new cache file.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { appendToFile, writeFileAtomicSync } from "../io/atomic.ts";
import { readInputText } from "../io/text-file.ts";
import type { OrderVerdict } from "./verdict.ts";

export class JudgeCache {
  readonly #answers = new Map<string, OrderVerdict>();

  constructor(readonly path: string | null) {
    if (path === null) return;
    // Created now (with its folder), so the appends of the run have a file to go to.
    if (!existsSync(path)) {
      writeFileAtomicSync(path, "");
      return;
    }
    for (const line of readInputText(path, "judge cache").split("\n")) {
      try {
        const { key, verdict, rationale, p_a } = JSON.parse(line) as OrderVerdict & { key: string };
        if (typeof key === "string" && ["A", "B", "C"].includes(verdict) && typeof p_a === "number") this.#answers.set(key, { verdict, rationale, p_a });
      } catch { /* a blank or torn line */ }
    }
  }

  static key(parts: (string | null)[]): string {
    return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
  }

  get(key: string): OrderVerdict | undefined {
    return this.#answers.get(key);
  }

  async put(key: string, answer: OrderVerdict): Promise<void> {
    this.#answers.set(key, answer);
    if (this.path !== null) await appendToFile(this.path, JSON.stringify({ key, ...answer }) + "\n");
  }
}
