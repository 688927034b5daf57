// What a reward-hacking monitor is: a named check with one documented threshold that looks at the
// step just taken, against the run's own recent steps, and says whether something went wrong.
// Monitors are pure functions of that history (kept by MonitorSet, monitor-set.ts), so they are
// tested on hand-made series and a resumed run rebuilds them from the checkpoint's history.

/** What the monitors read of one step: every trainer's metrics mapped to one meaning (signals.ts). */
export interface StepSignals {
  step: number;
  /** Mean completion length in tokens (EOS included). */
  length: number;
  /** Mean KL to the reference per completion token (nats), or null when the trainer logs none. */
  klPerToken: number | null;
  /** Mean policy entropy per completion token (nats), or null. */
  entropyPerToken: number | null;
  /** Distinct bigrams / bigrams over the step's completions pooled (Li et al. 2016's distinct-2). */
  distinct2: number;
  /** Share of completions that ended without EOS (cut at the length limit). */
  truncatedShare: number;
  /** The reward model's score of each completion. */
  scores: number[];
  /** PPO's approximate KL between the policy before and after the step's updates; null elsewhere. */
  approxKl: number | null;
  /** Share of tokens (or completions) whose ratio the update clipped; null when the loss has no clip. */
  clipFraction: number | null;
  /** PPO's value loss; null elsewhere. */
  valueLoss: number | null;
  /** A reward-model ensemble's members' std of a score, mean over the step's completions; null when the reward is not an ensemble. */
  ensembleStd: number | null;
  /** Names of the step's metrics (and "scores") that were NaN or infinite. */
  nonFinite: string[];
}

/** One firing, exactly one line of DIR/events.jsonl. */
export interface MonitorEvent {
  step: number;
  monitor: string;
  value: number;
  threshold: number;
  message: string;
}

/** A firing before the step is attached: what a monitor returns. */
export type Firing = Omit<MonitorEvent, "step" | "monitor">;

export interface Monitor {
  /** The name in events.jsonl and on the console (snake_case, as metric names). */
  readonly name: string;
  /** The step's condition, given the earlier steps (oldest first; the run's first steps and its latest). */
  observe(current: StepSignals, history: readonly StepSignals[]): Firing | null;
}

/** Steps at the run's start that define "as the run began" (entropy, distinct-2, truncation). */
export const BASELINE_STEPS = 5;

/** The mean of a signal over the run's first BASELINE_STEPS steps, or null until there are that many before `current`. */
export function startBaseline(history: readonly StepSignals[], current: StepSignals, pick: (s: StepSignals) => number | null): number | null {
  const first = history.filter((s) => s.step <= BASELINE_STEPS && s.step < current.step).map(pick);
  if (first.length < BASELINE_STEPS || first.some((x) => x === null || !Number.isFinite(x))) return null;
  return (first as number[]).reduce((a, x) => a + x, 0) / first.length;
}

/** The last `n` finite values of a signal before `current`, oldest first. */
export function recent(history: readonly StepSignals[], current: StepSignals, n: number, pick: (s: StepSignals) => number | null): number[] {
  return history
    .filter((s) => s.step < current.step)
    .map(pick)
    .filter((x): x is number => x !== null && Number.isFinite(x))
    .slice(-n);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const fmt = (x: number): string => (Math.abs(x) >= 100 || x === 0 ? x.toFixed(0) : Number(x.toPrecision(3)).toString());
