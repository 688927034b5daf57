// Host-memory tensors: the common currency of checkpoint readers and writers.
// Always float32, row-major, owned by whoever holds the object (no views into file buffers).

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Parameter name (Hugging Face convention, e.g. `model.layers.0.self_attn.q_proj.weight`) → tensor. */
export type TensorMap = Map<string, HostTensor>;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Builds a tensor, checking that the data length matches the shape. */
export function hostTensor(shape: number[], data: Float32Array, name = "tensor"): HostTensor {
  const n = numel(shape);
  if (data.length !== n) {
    throw new Error(`${name}: shape [${shape.join(", ")}] needs ${n} values, data has ${data.length}`);
  }
  return { shape, data };
}
