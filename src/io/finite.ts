// Weights that are not numbers: a checkpoint saved after a training run diverged holds NaN or
// ±Inf, and a model loaded from it samples garbage without any error. Every loaded tensor is
// scanned once (a fraction of a second for 135M parameters) and such a checkpoint is refused.
import { CheckpointError } from "./errors.ts";
import type { TensorMap } from "./tensors.ts";

/** Throws a CheckpointError naming `where`, the first tensor with a NaN or infinite value, and how many. */
export function refuseNonFinite(tensors: TensorMap, where: string): void {
  for (const [name, t] of tensors) {
    const data = t.data;
    let first = -1, count = 0;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) {
        if (first < 0) first = i;
        count++;
      }
    }
    if (count > 0) {
      throw new CheckpointError(`${where}: tensor ${name} holds ${count} non-finite value${count === 1 ? "" : "s"} (the first, at index ${first}, is ${data[first]}); ` +
        "the run that saved it diverged: resume from an earlier checkpoint or lower the learning rate");
    }
  }
}
