// Monitors of what the policy writes drifting from how the run began or from its recent steps:
// completion length jumping, entropy collapsing, completions repeating themselves. Each is a
// ratio to a baseline, so one default serves any model, task and response length.
import { BASELINE_STEPS, fmt, median, recent, startBaseline, type Monitor } from "./monitor.ts";

/** Mean completion length over the median of the last `window` steps: fires above `ratio` or below 1/ratio. */
export function lengthJump(ratio: number, window: number): Monitor {
  return {
    name: "response_length",
    observe(current, history) {
      const before = recent(history, current, window, (s) => s.length);
      if (before.length < Math.min(window, BASELINE_STEPS)) return null;
      const baseline = median(before);
      if (baseline <= 0) return null;
      const value = current.length / baseline;
      if (value > ratio) return { value, threshold: ratio, message: `mean completion length ${fmt(current.length)} tokens is ${fmt(value)}x the median of the last ${before.length} steps (${fmt(baseline)})` };
      if (value < 1 / ratio) return { value, threshold: 1 / ratio, message: `mean completion length ${fmt(current.length)} tokens fell to ${fmt(value)}x the median of the last ${before.length} steps (${fmt(baseline)})` };
      return null;
    },
  };
}

/** Entropy per token over its mean on the run's first steps: fires below `floor`. */
export function entropyCollapse(floor: number): Monitor {
  return {
    name: "entropy_collapse",
    observe(current, history) {
      const baseline = startBaseline(history, current, (s) => s.entropyPerToken);
      const entropy = current.entropyPerToken;
      if (baseline === null || entropy === null || baseline <= 0) return null;
      const value = entropy / baseline;
      if (value >= floor) return null;
      return { value, threshold: floor, message: `policy entropy ${fmt(entropy)} nats/token is ${fmt(value)}x its value on the first ${BASELINE_STEPS} steps (${fmt(baseline)}): the policy is collapsing onto few continuations` };
    },
  };
}

/** Distinct-2 of the step's completions over its mean on the run's first steps: fires below `floor`. */
export function repetition(floor: number): Monitor {
  return {
    name: "repetition",
    observe(current, history) {
      const baseline = startBaseline(history, current, (s) => s.distinct2);
      if (baseline === null || baseline <= 0) return null;
      const value = current.distinct2 / baseline;
      if (value >= floor) return null;
      return { value, threshold: floor, message: `distinct-2 of the step's completions ${fmt(current.distinct2)} is ${fmt(value)}x its value on the first ${BASELINE_STEPS} steps (${fmt(baseline)}): completions repeat words and phrases` };
    },
  };
}
