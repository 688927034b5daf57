// What every loss returns: the scalar to minimise and the scalars to log, as traced arrays.
import type { Array } from "../engine/runtime.ts";

export interface LossOutput {
  loss: Array;
  /** Scalars averaged over micro-batches and logged (e.g. accuracy, margin). */
  metrics: Record<string, Array>;
}
