// Parameters on the device, keyed by Hugging Face names: created, checked against an
// architecture, and moved to and from host tensors (checkpoints).
import { CheckpointError } from "../io/errors.ts";
import type { HostTensor, TensorMap } from "../io/tensors.ts";
import { np } from "../engine/runtime.ts";
import { fromHost, keep, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import type { Architecture } from "./architecture.ts";
import type { Params, ParamShapes } from "./types.ts";

/** Fresh parameters with the architecture's init rule, deterministic in `seed`. */
export function initParams(arch: Architecture, seed: number, extra: ParamShapes = {}): Params {
  const rng = new HostRng(seed);
  const params: Params = {};
  for (const [name, shape] of Object.entries({ ...arch.paramShapes, ...extra })) {
    const rule = arch.initRule(name);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (rule.std === 0) data.fill(rule.constant ?? 0);
    else for (let i = 0; i < data.length; i++) data[i] = rng.normal() * rule.std;
    params[name] = fromHost(data, shape);
  }
  return params;
}

/** Device parameters from checkpoint tensors: checkedTensors's, put on the engine. */
export function paramsFromTensors(arch: Architecture, tensors: TensorMap, source: string, optional: ParamShapes = {}): Params {
  const checked = checkedTensors(arch, tensors, source, optional);
  return Object.fromEntries([...checked].map(([name, t]) => [name, fromHost(t.data, t.shape)]));
}

/**
 * The tensors `arch` has, each checked to be present with its shape (a CheckpointError names the
 * problems otherwise); `optional` names (heads that a checkpoint may lack) are taken when present.
 */
export function checkedTensors(arch: Architecture, tensors: TensorMap, source: string, optional: ParamShapes = {}): TensorMap {
  const problems: string[] = [];
  const checked: TensorMap = new Map();
  const take = (name: string, shape: number[], required: boolean) => {
    const t = tensors.get(name);
    if (!t) {
      if (required) problems.push(`missing ${name} ${fmt(shape)}`);
      return;
    }
    if (fmt(t.shape) !== fmt(shape)) {
      problems.push(`${name} has shape ${fmt(t.shape)}, expected ${fmt(shape)}`);
      return;
    }
    checked.set(name, { shape, data: t.data });
  };
  for (const [name, shape] of Object.entries(arch.paramShapes)) take(name, shape, true);
  for (const [name, shape] of Object.entries(optional)) take(name, shape, false);
  if (problems.length > 0) {
    const shown = problems.slice(0, 4).join("; ");
    const more = problems.length > 4 ? `; … and ${problems.length - 4} more` : "";
    throw new CheckpointError(`${source}: the weights do not match the ${arch.config.architectures.join(", ")} config: ${shown}${more}`);
  }
  return checked;
}

/** Copies parameters to host tensors (for saving); the device arrays stay usable. */
export async function paramsToTensors(params: Params): Promise<TensorMap> {
  const out: TensorMap = new Map();
  for (const [name, p] of Object.entries(params)) {
    const shape = p.shape;
    const tensor: HostTensor = { shape, data: await toHost(keep(p)) };
    out.set(name, tensor);
  }
  return out;
}

export function countParams(params: Params): number {
  return Object.values(params).reduce((n, p) => n + p.size, 0);
}

/** A deep copy on the device (a frozen reference model shares nothing with the policy). */
export function copyParams(params: Params): Params {
  const out: Params = {};
  for (const [name, p] of Object.entries(params)) out[name] = np.array(p.ref);
  return out;
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
