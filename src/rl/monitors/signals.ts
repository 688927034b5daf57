// Every on-policy trainer's step report read as the monitors' StepSignals: the trainers log under
// TRL's names, which differ between PPO, GRPO/RLOO and online DPO (METRICS.md); this is the one
// place that knows which name means what. Sums over a completion are divided by the mean
// completion length, so the signals are per token and one threshold fits any response length.
import type { StepSignals } from "./monitor.ts";

/** What signals are read from: the step's metrics, its samples (all of them), and the tokens generated. */
export interface StepReportView {
  metrics: Record<string, number>;
  samples: readonly Record<string, unknown>[];
  generatedTokens: number;
}

/** The first of `names` the metrics hold. */
function first(metrics: Record<string, number>, ...names: string[]): number | null {
  for (const n of names) if (n in metrics) return metrics[n]!;
  return null;
}

/** The step's completions and their scores: PPO/GRPO/RLOO samples hold one each, online DPO's a chosen and a rejected one. */
export function scoredCompletions(samples: readonly Record<string, unknown>[]): { text: string; score: number }[] {
  return samples.flatMap((s) => {
    if (typeof s.completion === "string") return [{ text: s.completion, score: Number(s.score) }];
    if (typeof s.chosen === "string" && typeof s.rejected === "string") {
      return [
        { text: s.chosen, score: Number(s.chosen_score) },
        { text: s.rejected, score: Number(s.rejected_score) },
      ];
    }
    return [];
  });
}

/** Words as the repetition measure counts them: runs of letters, digits and apostrophes, lower-cased. */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
}

/** Distinct-2 (Li et al. 2016): distinct word bigrams over all bigrams of the texts, each text's bigrams its own. 1 when there are none. */
export function distinct2(texts: readonly string[]): number {
  const seen = new Set<string>();
  let total = 0;
  for (const t of texts) {
    const w = words(t);
    for (let i = 1; i < w.length; i++, total++) seen.add(`${w[i - 1]} ${w[i]}`);
  }
  return total === 0 ? 1 : seen.size / total;
}

export function stepSignals(step: number, report: StepReportView): StepSignals {
  const m = report.metrics;
  const completions = scoredCompletions(report.samples);
  const n = Math.max(1, completions.length);
  const length = report.generatedTokens / n;
  const perToken = (sum: number | null) => (sum === null ? null : length > 0 ? sum / length : 0);
  // PPO counts responses with EOS; GRPO/RLOO log the share cut off; online DPO the share with EOS.
  const eosCount = first(m, "val/num_eos_tokens");
  const clipped = first(m, "completions/clipped_ratio");
  const withEos = first(m, "val/contain_eos_token");
  const truncatedShare = clipped ?? (eosCount !== null ? 1 - eosCount / n : withEos !== null ? 1 - withEos : 0);
  const nonFinite = Object.entries(m).filter(([, v]) => !Number.isFinite(v)).map(([k]) => k);
  if (completions.some((c) => !Number.isFinite(c.score))) nonFinite.push("scores");
  return {
    step,
    length,
    klPerToken: perToken(first(m, "objective/kl")),
    // GRPO/RLOO's `entropy` is already per token; PPO's and online DPO's objective/entropy is a sum per completion.
    entropyPerToken: "entropy" in m ? m.entropy! : perToken(first(m, "objective/entropy")),
    distinct2: distinct2(completions.map((c) => c.text)),
    truncatedShare,
    scores: completions.map((c) => c.score),
    approxKl: first(m, "policy/approxkl_avg"),
    clipFraction: first(m, "policy/clipfrac_avg", "clip_ratio/region_mean", "cispo_clip_ratio"),
    valueLoss: first(m, "loss/value_avg"),
    ensembleStd: first(m, "objective/rm_ensemble_std"),
    nonFinite,
  };
}
