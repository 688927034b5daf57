// The upper frontier of the reward–KL plane: the points that no other point beats on both axes
// (as much reward or more for as little KL or less). Reading it left to right gives the most
// reward each KL budget has bought; a run below it spent KL for nothing (Gao et al. 2022 plot
// reward against √KL the same way).

export interface PlanePoint { kl: number; reward: number }

/** Indices of the frontier's points, by rising KL (and so rising reward); non-finite points are left out. */
export function upperFrontier(points: readonly PlanePoint[]): number[] {
  const order = points.map((_, i) => i).filter((i) => Number.isFinite(points[i]!.kl) && Number.isFinite(points[i]!.reward));
  // By KL, and at equal KL the best reward first, so only it can join the frontier.
  order.sort((a, b) => points[a]!.kl - points[b]!.kl || points[b]!.reward - points[a]!.reward);
  const frontier: number[] = [];
  let best = -Infinity;
  for (const i of order) {
    if (points[i]!.reward > best) {
      frontier.push(i);
      best = points[i]!.reward;
    }
  }
  return frontier;
}
