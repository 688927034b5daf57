// A run directory's checkpoints, and the evaluations saved in it: `rlhf eval --json > DIR/eval.json` for the final model,
// `… > DIR/checkpoint-N/eval.json` for a checkpoint (any eval*.json name). Each is one point of the
// reward–KL plane. Files that are not an eval report (another tool's JSON) are passed over.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { EvalReport, type EvalPoint } from "../shared/schema.ts";

const EVAL_FILE = /^eval.*\.json$/;
const CHECKPOINT_DIR = /^checkpoint-(\d+)$/;

function listDir(dir: string): string[] {
  try { return readdirSync(dir).sort(); } catch { return []; }
}

function readEval(path: string, file: string, step: number | null): EvalPoint | undefined {
  try {
    if (!statSync(path).isFile()) return undefined;
    const r = EvalReport.safeParse(JSON.parse(readFileSync(path, "utf8")));
    if (!r.success) return undefined;
    return { file, step, reward: r.data.reward, kl: r.data.kl, reference_reward: r.data.reference_reward ?? null, win_rate: r.data.win_rate ?? null };
  } catch {
    return undefined; // unreadable or mid-write: the next poll sees it whole
  }
}

/** The run's checkpoint directories (checkpoint-N) by step. */
export function checkpoints(runDir: string): { name: string; step: number }[] {
  const found: { name: string; step: number }[] = [];
  for (const name of listDir(runDir)) {
    const m = CHECKPOINT_DIR.exec(name);
    if (m) found.push({ name, step: Number(m[1]) });
  }
  return found.sort((a, b) => a.step - b.step);
}

/** The run's evaluations: its checkpoints' by step, then the final model's. */
export function readEvals(runDir: string): EvalPoint[] {
  const points: EvalPoint[] = [];
  for (const { name, step } of checkpoints(runDir)) {
    for (const file of listDir(join(runDir, name)).filter((f) => EVAL_FILE.test(f))) {
      const p = readEval(join(runDir, name, file), `${name}/${file}`, step);
      if (p) points.push(p);
    }
  }
  for (const file of listDir(runDir).filter((f) => EVAL_FILE.test(f))) {
    const p = readEval(join(runDir, file), file, null);
    if (p) points.push(p);
  }
  return points;
}
