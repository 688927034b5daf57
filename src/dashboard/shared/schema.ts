// The one schema module that the dashboard server and its web page both import: the shapes of the
// JSON API and of the lines the server reads from a run directory.
//
// HTTP API (read-only, all GET, all JSON; a run is addressed by its index on the command line,
// never by a path, so no request can name a file):
//   GET /api/runs                       -> RunSummary[]
//   GET /api/runs/:run/updates?generation=G&metrics=K&samples=K&events=K&rounds=K
//                                       -> RunUpdate: each log's records from index K on, and the
//                                          run's evaluations and checkpoint steps; `reset` (and every log from 0) when
//                                          a file was replaced since generation G
//   GET /healthz                        -> {"ok": true}
// Errors are `{"error": "..."}` with 400 (bad query) or 404 (no such run).
//
// The lines are normalized on the server: numbers stay numbers (NaN and ±inf, which JSON writes
// as null, stay null), texts stay texts, and anything else in a line is dropped, so the page gets
// exactly these shapes. Model outputs are untrusted text: the page renders them as text nodes.
import { z } from "zod";

export const LOGS = ["metrics", "samples", "events", "rounds"] as const;
export type LogName = (typeof LOGS)[number];

/** Where each log lives in a run directory. */
export const LOG_FILES: Record<LogName, string> = {
  metrics: "metrics.jsonl",
  samples: "samples.jsonl",
  events: "events.jsonl",
  rounds: "rounds.jsonl",
};

const num = z.number().nullable().catch(null);
const text = z.string().catch("");

/** A chat prompt (OpenAI messages) shown as one text, a message per line. */
const PromptText = z.union([
  z.string(),
  z.array(z.object({ role: z.string(), content: z.string() })).transform((ms) => ms.map((m) => `${m.role}: ${m.content}`).join("\n")),
]);

/** One line of metrics.jsonl: `step` and every numeric field (the names of src/algorithms/METRICS.md). */
export const MetricRecord = z.record(z.string(), z.unknown()).transform((r) => {
  const out: Record<string, number | null> = {};
  for (const [k, v] of Object.entries(r)) if (typeof v === "number" || v === null) out[k] = v;
  return out;
});
export type MetricRecord = z.output<typeof MetricRecord>;

/**
 * One line of samples.jsonl: PPO's and GRPO's `{step, prompt, completion, score, advantage?}`,
 * online DPO's `{step, prompt, chosen, rejected, chosen_score, rejected_score}` (the chosen one is
 * shown as the completion), `rlhf eval --samples`' `{prompt, completion, reward, kl, …}`. Other
 * text or number fields are kept under `extra`.
 */
export const SampleRecord = z.looseObject({ prompt: PromptText }).transform((r) => {
  const completionKey = ["completion", "chosen"].find((k) => typeof r[k] === "string");
  const scoreKey = ["score", "reward", "chosen_score"].find((k) => typeof r[k] === "number");
  const shown = new Set(["step", "prompt", "kl", completionKey, scoreKey]);
  const extra: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(r)) if (!shown.has(k) && (typeof v === "string" || typeof v === "number")) extra[k] = v;
  return {
    step: typeof r.step === "number" ? r.step : null,
    prompt: r.prompt,
    completion: completionKey ? (r[completionKey] as string) : "",
    score: scoreKey ? (r[scoreKey] as number) : null,
    kl: typeof r.kl === "number" ? r.kl : null, // per-sample KL when the writer has it; else the page shows the step's
    extra,
  };
});
export type SampleRecord = z.output<typeof SampleRecord>;

/** One line of events.jsonl, written by a run's reward-hacking monitors when one fires. */
export const EventRecord = z.object({ step: z.number(), monitor: text, value: num, threshold: num, message: text });
export type EventRecord = z.output<typeof EventRecord>;

/** One line of a loop's rounds.jsonl (`round`, `rm_accuracy`, `reward`, `kl`, `win_rate`, …): texts and numbers. */
export const RoundRecord = z.record(z.string(), z.unknown()).transform((r) => {
  const out: Record<string, string | number | null> = {};
  for (const [k, v] of Object.entries(r)) if (typeof v === "number" || typeof v === "string" || v === null) out[k] = v;
  return out;
});
export type RoundRecord = z.output<typeof RoundRecord>;

/** `rlhf eval --json` saved in the run (DIR/eval*.json, DIR/checkpoint-N/eval*.json): one point of the reward–KL plane. */
export const EvalReport = z.looseObject({ reward: z.number(), kl: z.number(), reference_reward: z.number().optional(), win_rate: z.number().optional() });
export const EvalPoint = z.object({
  file: z.string(), // relative to the run directory, for the label
  step: z.number().nullable(), // the checkpoint's step, null for the run's final model
  reward: z.number(),
  kl: z.number(),
  reference_reward: z.number().nullable(),
  win_rate: z.number().nullable(),
});
export type EvalPoint = z.infer<typeof EvalPoint>;

export const RunSummary = z.object({ index: z.number().int(), name: z.string(), path: z.string() });
export type RunSummary = z.infer<typeof RunSummary>;

export const RunParams = z.object({ run: z.coerce.number().int().min(0) });

const cursor = z.coerce.number().int().min(0).default(0);
export const UpdatesQuery = z.strictObject({ generation: z.coerce.number().int().min(-1).default(-1), metrics: cursor, samples: cursor, events: cursor, rounds: cursor });
/** Where a reader stands: the run generation it holds and how many records of each log. */
export type Cursors = z.output<typeof UpdatesQuery>;

export const RunUpdate = z.object({
  generation: z.number().int(),
  reset: z.boolean(),
  metrics: z.array(z.record(z.string(), z.number().nullable())),
  samples: z.array(z.object({ step: z.number().nullable(), prompt: z.string(), completion: z.string(), score: z.number().nullable(), kl: z.number().nullable(), extra: z.record(z.string(), z.union([z.string(), z.number()])) })),
  events: z.array(EventRecord),
  rounds: z.array(z.record(z.string(), z.union([z.string(), z.number(), z.null()]))),
  evals: z.array(EvalPoint),
  checkpoints: z.array(z.number()), // steps of the run's checkpoint-N directories
});
export type RunUpdate = z.infer<typeof RunUpdate>;
