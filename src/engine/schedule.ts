// Learning-rate schedules, computed on the host (a plain number per step), with the shapes of
// transformers' get_{constant,linear,cosine}_schedule_with_warmup.

export type ScheduleName = "constant" | "linear" | "cosine" | "constant_with_warmup";

export interface ScheduleConfig {
  name: ScheduleName;
  learningRate: number;
  warmupSteps: number;
  totalSteps: number;
  /** Floor for cosine/linear decay as a fraction of the peak rate (0 = decay to zero). */
  minLrRatio?: number;
}

/** Learning rate for optimizer step `step` (0-based: the rate used by the first update is step 0). */
export function learningRateAt(config: ScheduleConfig, step: number): number {
  const { learningRate: peak, warmupSteps, totalSteps } = config;
  if (config.name === "constant") return peak;
  if (step < warmupSteps) return (peak * step) / Math.max(1, warmupSteps);
  if (config.name === "constant_with_warmup") return peak;
  const floor = config.minLrRatio ?? 0;
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
  const shape = config.name === "linear" ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return peak * (floor + (1 - floor) * shape);
}
