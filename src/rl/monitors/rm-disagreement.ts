// A reward-model ensemble's members disagreeing more and more while the score they give keeps
// rising: the policy is climbing where the members' agreement, and so the reward, is least to be
// trusted (Coste et al. 2023 find overoptimisation where the ensemble's spread grows). Read from
// the trainers' objective/rm_ensemble_std, so it is silent unless the reward is an ensemble.
import { BASELINE_STEPS, fmt, startBaseline, type Monitor, type StepSignals } from "./monitor.ts";

const meanScore = (s: StepSignals): number | null => (s.scores.length === 0 ? null : s.scores.reduce((a, x) => a + x, 0) / s.scores.length);

/**
 * The members' std over its mean on the run's first steps: fires above `ratio` while the mean score
 * is above its own first steps' mean by more than that starting std (a rise larger than the
 * disagreement the run began with, so noise in a flat score does not count).
 */
export function rmDisagreement(ratio: number): Monitor {
  return {
    name: "rm_disagreement",
    observe(current, history) {
      const std = current.ensembleStd;
      const baseline = startBaseline(history, current, (s) => s.ensembleStd);
      const scoreBaseline = startBaseline(history, current, meanScore);
      const score = meanScore(current);
      if (std === null || baseline === null || scoreBaseline === null || score === null || baseline <= 0) return null;
      const value = std / baseline;
      if (value <= ratio || score <= scoreBaseline + baseline) return null;
      return {
        value,
        threshold: ratio,
        message: `the reward-model ensemble's members disagree ${fmt(value)}x as much as on the first ${BASELINE_STEPS} steps (std ${fmt(std)} against ${fmt(baseline)}) while the mean score rose from ${fmt(scoreBaseline)} to ${fmt(score)}: the policy is climbing where the reward models disagree`,
      };
    },
  };
}
