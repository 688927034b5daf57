// A reward-model ensemble's score of each completion from its members' scores (Coste et al. 2023,
// "Reward Model Ensembles Help Mitigate Overoptimization"): the mean; the worst case (min), which
// the policy can only raise by raising every member; or the uncertainty-weighted optimisation
// (UWO), the mean less λ times the members' variance, which charges the policy for completions
// the members disagree on. The members' spread (population std) is reported either way: it is
// what the rm_disagreement monitor and the loop's active selection read.

export type EnsembleReduce = "mean" | "min" | "uwo";

export const ENSEMBLE_REDUCES: readonly EnsembleReduce[] = ["mean", "min", "uwo"];

/** Config fields of every command that reads a reward (the RL trainers' configs, eval's and pairs' flags). */
export interface EnsembleOptions {
  ensemble_reduce: EnsembleReduce;
  /** UWO's λ: the weight of the members' variance subtracted from their mean. */
  uwo_lambda: number;
}

export const defaultEnsembleOptions: EnsembleOptions = { ensemble_reduce: "mean", uwo_lambda: 0.5 };

/** `scores[m][i]`: member m's score of completion i. Returns the reduced score and the members' std of each completion. */
export function reduceEnsemble(scores: readonly (readonly number[])[], options: EnsembleOptions): { rewards: number[]; std: number[] } {
  const members = scores.length;
  if (members === 0) throw new Error("an ensemble needs at least one member");
  const n = scores[0]!.length;
  if (scores.some((s) => s.length !== n)) throw new Error("every ensemble member must score every completion");
  const rewards: number[] = [];
  const std: number[] = [];
  for (let i = 0; i < n; i++) {
    const column = scores.map((s) => s[i]!);
    const mean = column.reduce((a, x) => a + x, 0) / members;
    const variance = column.reduce((a, x) => a + (x - mean) ** 2, 0) / members;
    std.push(Math.sqrt(variance));
    rewards.push(options.ensemble_reduce === "min" ? Math.min(...column) : options.ensemble_reduce === "uwo" ? mean - options.uwo_lambda * variance : mean);
  }
  return { rewards, std };
}
