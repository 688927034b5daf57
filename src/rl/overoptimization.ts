// The overoptimization curve of Gao, Schulman & Hilton, "Scaling Laws for Reward Model
// Overoptimization" (2022): gold reward gain against d = √KL(π ‖ π_ref), with the paper's forms
//   best-of-n:  R(d) = d (α − β d)
//   RL:         R(d) = d (α − β log d)
// (section 2; both pass through R = 0 at d = 0, so R is a gain over the initial policy), the KL of
// best-of-n sampling in closed form, and the paper's unbiased estimate of best-of-n's expected gold
// from N ≥ n samples per prompt (appendix: sampling n of the N without replacement, every subset alike).

/** KL(best-of-n ‖ sampler) in nats: log n − (n − 1)/n (Stiennon et al. 2020, Gao et al. 2022 eq. 1). */
export function bestOfNKl(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`best-of-n: n must be an integer ≥ 1, got ${n}`);
  return Math.log(n) - (n - 1) / n;
}

/**
 * Expected `gold` of the sample with the highest `proxy` among n drawn without replacement from
 * these N samples of one prompt, every n-subset equally likely: with the samples sorted by proxy
 * ascending, the i-th (1-based) is the best of a subset with probability C(i−1, n−1) / C(N, n).
 */
export function bestOfNExpectation(proxy: readonly number[], gold: readonly number[], n: number): number {
  const N = proxy.length;
  if (gold.length !== N) throw new RangeError(`best-of-n: ${N} proxy scores but ${gold.length} gold scores`);
  if (!Number.isInteger(n) || n < 1 || n > N) throw new RangeError(`best-of-n: n must be an integer in 1..${N}, got ${n}`);
  const order = proxy.map((_, i) => i).sort((a, b) => proxy[a]! - proxy[b]!);
  // weight(N) = C(N−1, n−1)/C(N, n) = n/N; weight(i−1) = weight(i)·(i−n)/(i−1), down to weight(n).
  let weight = n / N;
  let sum = 0;
  for (let i = N; i >= n; i--) {
    sum += weight * gold[order[i - 1]!]!;
    weight *= (i - n) / (i - 1);
  }
  return sum;
}

export interface GaoFit {
  alpha: number;
  beta: number;
  /** d where the fitted gold peaks, and the gold there. */
  peak_d: number;
  peak_gold: number;
  /** Root mean square of the residuals. */
  rmse: number;
}

/** Least squares of y ≈ α·f(x) − β·g(x): the 2 × 2 normal equations, solved in closed form. */
function fitTwoTerms(f: readonly number[], g: readonly number[], y: readonly number[]): { alpha: number; beta: number; rmse: number } {
  if (f.length !== y.length || f.length < 2) throw new RangeError(`Gao fit: need at least 2 points with one gold value each, got ${f.length} and ${y.length}`);
  let ff = 0, fg = 0, gg = 0, fy = 0, gy = 0;
  for (let i = 0; i < y.length; i++) {
    ff += f[i]! * f[i]!;
    fg += f[i]! * g[i]!;
    gg += g[i]! * g[i]!;
    fy += f[i]! * y[i]!;
    gy += g[i]! * y[i]!;
  }
  const det = ff * gg - fg * fg;
  if (!(Math.abs(det) > 1e-12 * ff * gg)) throw new RangeError("Gao fit: the points do not determine both coefficients (too few distinct d)");
  const alpha = (fy * gg - gy * fg) / det;
  const beta = -(ff * gy - fg * fy) / det;
  const sse = y.reduce((acc, yi, i) => acc + (yi - (alpha * f[i]! - beta * g[i]!)) ** 2, 0);
  return { alpha, beta, rmse: Math.sqrt(sse / y.length) };
}

/** Best-of-n's form R = d(α − βd); it peaks at d = α/(2β) when β > 0. */
export function fitBestOfN(d: readonly number[], gold: readonly number[]): GaoFit {
  const fit = fitTwoTerms(d, d.map((x) => x * x), gold);
  const peak_d = fit.beta > 0 ? fit.alpha / (2 * fit.beta) : Infinity;
  return { ...fit, peak_d, peak_gold: gaoBestOfN(fit, peak_d) };
}

/** RL's form R = d(α − β log d); dR/dd = α − β(log d + 1) = 0 at d = exp(α/β − 1) when β > 0. */
export function fitRl(d: readonly number[], gold: readonly number[]): GaoFit {
  const fit = fitTwoTerms(d, d.map((x) => (x > 0 ? x * Math.log(x) : 0)), gold);
  const peak_d = fit.beta > 0 ? Math.exp(fit.alpha / fit.beta - 1) : Infinity;
  return { ...fit, peak_d, peak_gold: gaoRl(fit, peak_d) };
}

export const gaoBestOfN = ({ alpha, beta }: { alpha: number; beta: number }, d: number): number => d * (alpha - beta * d);
export const gaoRl = ({ alpha, beta }: { alpha: number; beta: number }, d: number): number => (d > 0 ? d * (alpha - beta * Math.log(d)) : 0);
