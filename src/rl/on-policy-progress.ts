// What every on-policy trainer (PPO, GRPO, RLOO, online DPO) keeps between steps besides its
// arrays: the steps taken, the completions generated, the host RNG's state, and its place in the
// cycle of prompts, which is shuffled by the seed and reshuffled each time it runs out. Saved as
// JSON in every checkpoint, it is what makes a resumed run draw the same prompts and samples.
import { drawFromCycle, HostRng } from "../engine/random.ts";

export interface OnPolicyProgress {
  step: number;
  /** Completions generated so far (TRL's `episode`). */
  episode: number;
  rng: number[];
  promptOrder: number[];
  promptCursor: number;
}

/** A fresh run's progress: the prompt indices shuffled by the seed, none drawn yet. */
export function freshProgress(seed: number, promptCount: number): OnPolicyProgress {
  const rng = new HostRng(seed);
  const promptOrder = rng.shuffle(Array.from({ length: promptCount }, (_, i) => i));
  return { step: 0, episode: 0, rng: rng.state, promptOrder, promptCursor: 0 };
}

/** The next `n` prompt indices of the cycle; advances `progress` (reshuffling with `rng` at the cycle's end). */
export function nextPrompts(progress: OnPolicyProgress, n: number, rng: HostRng): number[] {
  const next = drawFromCycle(progress.promptOrder, progress.promptCursor, n, rng);
  [progress.promptOrder, progress.promptCursor] = [next.order, next.cursor];
  return next.picked;
}
