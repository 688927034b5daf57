// The run's monitors together: which are on (from the config and what the run has), the history
// they compare each step with, and which conditions already hold. A monitor fires when its
// condition starts to hold, not on every step it goes on holding, so a lasting condition is one
// event; it fires again after a step without it. The history and that set are the state a
// checkpoint keeps (trainer_state.json `monitors`), so a resumed run fires exactly as an
// uninterrupted one would.
import type { MonitorFields } from "../../train/monitor-config.ts";
import type { RewardStats } from "../../train/reward-stats.ts";
import { entropyCollapse, lengthJump, repetition } from "./drift.ts";
import { nonFinite, truncation } from "./health.ts";
import { klAcceleration, klCeiling } from "./kl.ts";
import { BASELINE_STEPS, type Monitor, type MonitorEvent, type StepSignals } from "./monitor.ts";
import { rewardOutOfRange } from "./reward-range.ts";
import { rmDisagreement } from "./rm-disagreement.ts";
import { approxKlSpike, clipFractionSpike, valueLossBlowup } from "./updates.ts";

export interface MonitorState {
  /** The run's first BASELINE_STEPS steps and its latest 2 × monitor_window, oldest first. */
  history: StepSignals[];
  /** Monitors whose condition held at the last step. */
  active: string[];
}

/** What the run knows besides its config: the reward model's training statistics, and whether it penalises or masks completions without EOS. */
export interface MonitorContext {
  rewardStats: RewardStats | null;
  /** Why the reward-range monitor is off when rewardStats is null. */
  rewardStatsMissing?: string;
  truncationLosesSignal: boolean;
}

/** The monitors a config turns on, and a one-line note for each that is off for want of something. */
export function monitorsFor(config: MonitorFields, context: MonitorContext): { monitors: Monitor[]; notes: string[] } {
  const c = config;
  const w = c.monitor_window;
  const notes: string[] = [];
  const monitors: Monitor[] = [nonFinite()];
  const add = (threshold: number | null, make: (t: number) => Monitor) => threshold !== null && monitors.push(make(threshold));
  add(c.monitor_length_jump, (t) => lengthJump(t, w));
  add(c.monitor_kl_ceiling, klCeiling);
  add(c.monitor_kl_acceleration, (t) => klAcceleration(t, w));
  add(c.monitor_entropy_collapse, entropyCollapse);
  add(c.monitor_repetition, repetition);
  add(c.monitor_truncated_share, (t) => truncation(t, context.truncationLosesSignal));
  add(c.monitor_approxkl_spike, (t) => approxKlSpike(t, w));
  add(c.monitor_clipfrac_spike, (t) => clipFractionSpike(t, w));
  add(c.monitor_value_loss_blowup, (t) => valueLossBlowup(t, w));
  add(c.monitor_rm_disagreement, rmDisagreement);
  if (c.monitor_reward_ood !== null) {
    if (context.rewardStats) monitors.push(rewardOutOfRange(c.monitor_reward_ood, context.rewardStats));
    else notes.push(`monitor reward_ood is off: ${context.rewardStatsMissing ?? "no reward statistics"}`);
  }
  return { monitors, notes };
}

export class MonitorSet {
  readonly #monitors: readonly Monitor[];
  readonly #keep: number;
  #history: StepSignals[];
  #active: Set<string>;

  constructor(monitors: readonly Monitor[], window: number, state?: MonitorState) {
    this.#monitors = monitors;
    this.#keep = 2 * window;
    this.#history = state ? [...state.history] : [];
    this.#active = new Set(state?.active ?? []);
  }

  /** The step's events (monitors whose condition starts to hold now), and the step joins the history. */
  observe(signals: StepSignals): MonitorEvent[] {
    const events: MonitorEvent[] = [];
    const active = new Set<string>();
    for (const m of this.#monitors) {
      const firing = m.observe(signals, this.#history);
      if (!firing) continue;
      active.add(m.name);
      if (!this.#active.has(m.name)) events.push({ step: signals.step, monitor: m.name, ...firing });
    }
    this.#active = active;
    const latest = [...this.#history, signals];
    this.#history = [...latest.filter((s) => s.step <= BASELINE_STEPS), ...latest.filter((s) => s.step > BASELINE_STEPS).slice(-this.#keep)];
    return events;
  }

  get state(): MonitorState {
    return { history: structuredClone(this.#history), active: [...this.#active] };
  }
}
