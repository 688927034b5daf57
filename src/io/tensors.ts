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
