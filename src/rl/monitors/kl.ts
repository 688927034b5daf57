// Monitors of the policy's distance from the reference: KL per token above a ceiling, and KL
// rising faster than its own recent trend (acceleration), the sign that the policy has found
// something the reward model pays for and is running to it.
import { fmt, recent, type Monitor } from "./monitor.ts";

/** Mean KL per completion token (nats): fires above `ceiling`. */
export function klCeiling(ceiling: number): Monitor {
  return {
    name: "kl_ceiling",
    observe(current) {
      const kl = current.klPerToken;
      if (kl === null || kl <= ceiling) return null;
      return { value: kl, threshold: ceiling, message: `KL to the reference ${fmt(kl)} nats/token (${fmt(kl * current.length)} per completion) is above the ceiling ${fmt(ceiling)}` };
    },
  };
}

/**
 * KL's rise over the last `window` steps (this one included) against its rise over the `window`
 * steps before: fires when it is more than `factor` times as fast. Each rise is the difference of
 * the two halves' means, which averages out single noisy batches. A rise smaller than
 * MIN_KL_RISE nats/token is never an acceleration: a flat KL divides noise by noise.
 */
export function klAcceleration(factor: number, window: number): Monitor {
  const half = Math.max(1, window >> 1);
  return {
    name: "kl_acceleration",
    observe(current, history) {
      if (current.klPerToken === null) return null;
      const series = [...recent(history, current, 2 * window - 1, (s) => s.klPerToken), current.klPerToken];
      if (series.length < 2 * window) return null;
      const mean = (from: number) => series.slice(from, from + half).reduce((a, x) => a + x, 0) / half;
      const riseNow = mean(2 * window - half) - mean(window);
      const riseBefore = mean(window - half) - mean(0);
      if (riseNow < MIN_KL_RISE) return null;
      const value = riseNow / Math.max(riseBefore, MIN_KL_RISE / factor);
      if (value <= factor) return null;
      return {
        value,
        threshold: factor,
        message: `KL rose ${fmt(riseNow)} nats/token over the last ${window} steps, ${fmt(value)}x its rise over the ${window} before (${fmt(riseBefore)}); now ${fmt(current.klPerToken)}`,
      };
    },
  };
}

/** The smallest KL rise (nats/token over one window) that counts as a trend at all. */
export const MIN_KL_RISE = 0.02;
