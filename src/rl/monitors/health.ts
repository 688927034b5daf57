// Monitors of a step that carries no signal: NaN or infinite numbers, and completions that almost
// all end at the length limit without EOS, where a missing-EOS penalty gives every completion the
// same reward (zero advantages) and GRPO's mask_truncated_completions drops them all from the loss.
import { BASELINE_STEPS, fmt, startBaseline, type Monitor } from "./monitor.ts";

/** Fires on any NaN or infinite metric or score; always on. */
export function nonFinite(): Monitor {
  return {
    name: "non_finite",
    observe(current) {
      const bad = current.nonFinite;
      if (bad.length === 0) return null;
      return { value: bad.length, threshold: 0, message: `not finite: ${bad.join(", ")}` };
    },
  };
}

/**
 * Fires when at least `share` of the step's completions end without EOS, and either the run drops
 * or penalises such completions (their reward or gradient is lost: `losesSignal`) or the share
 * was below `share` as the run began (the policy has started running into the limit). A task whose
 * completions are always cut (stories at 48 tokens) and that does not penalise it does not fire.
 */
export function truncation(share: number, losesSignal: boolean): Monitor {
  return {
    name: "truncated_share",
    observe(current, history) {
      const value = current.truncatedShare;
      if (value < share) return null;
      if (losesSignal) return { value, threshold: share, message: `${fmt(100 * value)}% of completions ended without EOS, and this run penalises or masks them: their rewards or gradients carry no signal` };
      const baseline = startBaseline(history, current, (s) => s.truncatedShare);
      if (baseline === null || baseline >= share) return null;
      return { value, threshold: share, message: `${fmt(100 * value)}% of completions now end without EOS (${fmt(100 * baseline)}% on the first ${BASELINE_STEPS} steps): the policy runs into the length limit` };
    },
  };
}
