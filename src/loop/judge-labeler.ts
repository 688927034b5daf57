// An AI judge as the loop's labeler (or as `rest`, for the comparisons over the people's budget):
// `rlhf judge` run in this process on the round's comparisons as {"id", "prompt", "responses"}
// records, so the loop gets its both-orders rule, strict verdicts, retries and cache (in the round
// folder: a resumed round asks nothing twice). A comparison whose verdict failed gets no label
// (counted in the round's judge.summary.json), never a guess; ties come back as "tie": true.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";
import { InputError } from "../io/errors.ts";
import { labeled, type Comparison, type LabeledComparison } from "./comparisons.ts";
import { fieldFlags, type LabelerConfig } from "./config.ts";
import { jsonLines, readJsonLines } from "./run-dir.ts";

type JudgeConfig = Extract<LabelerConfig, { type: "judge" }>;

export class JudgeLabelerError extends InputError {}

/** One verdict of `rlhf judge`'s output, the fields the loop reads. */
export interface JudgeVerdict {
  id: string; chosen: string; tie?: boolean; judge: string; confidence: number;
  rationale?: { ab: string | null; ba: string | null };
}

/** `judgeCommand` is `rlhf judge`'s entry point (argv in, exit code out). */
export async function labelByJudge(judgeCommand: (argv: string[]) => Promise<number>, config: JudgeConfig, comparisons: Comparison[], round: number, dir: string, say: (line: string) => void): Promise<{ labels: LabeledComparison[]; failed: number }> {
  if (comparisons.length === 0) return { labels: [], failed: 0 };
  const { verdicts, failed } = await judgeVerdicts(judgeCommand, config, comparisons, dir);
  const byId = new Map(comparisons.map((c) => [c.id, c]));
  const labels = verdicts.map((v) => {
    const c = byId.get(v.id)!;
    return labeled(c, v.tie ? null : v.chosen === c.responses[0] ? 0 : 1, `judge:${config.model ?? config.judge}`, round);
  });
  say(`round ${round}: the judge labeled ${labels.length} of ${comparisons.length} comparisons (${labels.filter((l) => l.tie).length} ties), ${failed} failed`);
  return { labels, failed };
}

/** `rlhf judge` on the comparisons, in `dir` (its cache there too): the verdicts, and how many failed. */
export async function judgeVerdicts(judgeCommand: (argv: string[]) => Promise<number>, config: JudgeConfig, comparisons: Comparison[], dir: string): Promise<{ verdicts: JudgeVerdict[]; failed: number }> {
  if (comparisons.length === 0) return { verdicts: [], failed: 0 };
  const data = join(dir, "judge-items.jsonl");
  const output = join(dir, "judge.jsonl");
  await writeFileAtomic(data, jsonLines(comparisons.map((c) => ({ id: c.id, prompt: c.prompt, responses: c.responses }))));
  const argv = ["--judge", config.judge, ...(config.model ? ["--judge-model", config.model] : []), "--data", data, "--output", output, ...fieldFlags(config.args)];
  // rlhf judge prints its JSON summary on stdout; the loop's stdout is its round table.
  const write = process.stdout.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  let code: number;
  try {
    code = await judgeCommand(argv);
  } finally {
    process.stdout.write = write;
  }
  const summaryPath = join(dir, "judge.summary.json");
  // rlhf judge exits 1 when every verdict failed; for the loop that is a round without judge labels.
  const summary = existsSync(summaryPath) ? (JSON.parse(readFileSync(summaryPath, "utf8")) as { judged: number; failed: number }) : null;
  if (!summary || !existsSync(output) || (code !== 0 && summary.judged > 0)) throw new JudgeLabelerError(`rlhf judge ${argv.join(" ")} failed (exit code ${code})`);
  const ids = new Set(comparisons.map((c) => c.id));
  const verdicts = readJsonLines<JudgeVerdict>(output);
  for (const v of verdicts) if (!ids.has(v.id)) throw new JudgeLabelerError(`${output}: id ${JSON.stringify(v.id)} is not one of the round's comparisons`);
  return { verdicts, failed: summary.failed };
}
