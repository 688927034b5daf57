// Monitors of the update itself (PPO's, and GRPO/RLOO's clip share): a step whose approximate KL,
// clipped share or value loss jumps far above its recent median has taken (or needs) a step much
// larger than the run's others: a reward the value model cannot follow, a learning rate too high
// for where the policy now is.
import { BASELINE_STEPS, fmt, median, recent, type Monitor, type StepSignals } from "./monitor.ts";

/**
 * A signal over the median of its last `window` steps: fires above `factor`, and only when the
 * signal is above `floor` too (a spike from 1e-5 to 1e-4 is noise, not an event).
 */
function spike(name: string, what: string, pick: (s: StepSignals) => number | null, factor: number, window: number, floor: number): Monitor {
  return {
    name,
    observe(current, history) {
      const x = pick(current);
      if (x === null || x <= floor) return null;
      const before = recent(history, current, window, pick);
      if (before.length < Math.min(window, BASELINE_STEPS)) return null;
      const baseline = median(before);
      const value = x / Math.max(baseline, floor / factor);
      if (value <= factor) return null;
      return { value, threshold: factor, message: `${what} ${fmt(x)} is ${fmt(value)}x the median of the last ${before.length} steps (${fmt(baseline)})` };
    },
  };
}

/** The floors below which these signals never fire (documented in docs/monitors.md). */
export const SPIKE_FLOORS = { approxKl: 0.01, clipFraction: 0.1, valueLoss: 0 } as const;

export const approxKlSpike = (factor: number, window: number): Monitor =>
  spike("approxkl_spike", "approximate KL of the step's updates", (s) => s.approxKl, factor, window, SPIKE_FLOORS.approxKl);

export const clipFractionSpike = (factor: number, window: number): Monitor =>
  spike("clipfrac_spike", "clipped share of the step's updates", (s) => s.clipFraction, factor, window, SPIKE_FLOORS.clipFraction);

export const valueLossBlowup = (factor: number, window: number): Monitor =>
  spike("value_loss_blowup", "value loss", (s) => s.valueLoss, factor, window, SPIKE_FLOORS.valueLoss);
