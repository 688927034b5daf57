// LoRA (Hu et al. 2021) as PEFT defines it: on each targeted linear projection W, a trainable
// low-rank update s·B·A beside the frozen W (A [r, in], B [out, r], s = lora_alpha / r, or
// lora_alpha / √r with rsLoRA), and `modules_to_save` (a reward model's `score`) trained whole.
// The adapter's parameters sit in the same Params as the base, under PEFT's names less the adapter
// name (`model.layers.0.self_attn.q_proj.lora_A.weight`, layers.ts loraWeightNames), so a pass
// runs the adapter when its params hold it and the plain base when they do not (a reference model
// is the base with the adapter off). Here: the config, which modules it targets, the init, the
// architecture that runs it, and the merge W + s·B·A. Its files are adapter-files.ts's.
import { np, random } from "../engine/runtime.ts";
import { compileConsuming, fromHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { InputError } from "../io/errors.ts";
import type { Architecture } from "./architecture.ts";
import { loraWeightNames } from "./layers.ts";
import { familyOf } from "./registry.ts";
import type { LoraPass, Params } from "./types.ts";

/** PEFT's shorthand for every linear projection but the output head. */
export const ALL_LINEAR = "all-linear";

/** adapter_config.json's fields that change what an adapter computes, under PEFT's LoraConfig names. */
export interface LoraConfig {
  task_type: "CAUSAL_LM" | "SEQ_CLS";
  r: number;
  lora_alpha: number;
  /** Dropout on the adapter's input in training passes. */
  lora_dropout: number;
  /**
   * The adapted modules, matched against module names as PEFT matches them: a list entry matches a
   * module named exactly so or ending in "." + entry; a string is a regular expression the whole
   * name must match.
   */
  target_modules: string[] | string;
  /** Modules trained whole and saved with the adapter (a reward model's `score`). */
  modules_to_save: string[] | null;
  /** The targeted weights are stored [in, out] (GPT-2's Conv1D); PEFT sets it for such models. */
  fan_in_fan_out: boolean;
  use_rslora: boolean;
  /** Where the base model is: a path (relative ones are read from the adapter's directory) or a Hub id. */
  base_model_name_or_path: string | null;
}

/** A LoRA setting that cannot apply to the model (the message names the field). */
export class LoraError extends InputError {}

export function loraScaling(c: Pick<LoraConfig, "r" | "lora_alpha" | "use_rslora">): number {
  return c.use_rslora ? c.lora_alpha / Math.sqrt(c.r) : c.lora_alpha / c.r;
}

/**
 * The model's linear projections by module name, in parameter order: every matrix inside the
 * repeated blocks (`….layers.3.…`, `….h.3.…`). Embeddings and the output head sit outside the
 * blocks, so this is PEFT's "all-linear" (every nn.Linear and Conv1D but the output layer) for
 * any architecture whose blocks call their matrices through layers.ts project.
 */
export function linearModules(arch: Architecture): string[] {
  return Object.entries(arch.paramShapes)
    .filter(([name, shape]) => shape.length === 2 && name.endsWith(".weight") && /\.\d+\./.test(name))
    .map(([name]) => name.slice(0, -".weight".length));
}

/** GPT-2's Conv1D weights are stored [in, out]; the architecture lists them as the ones decoding reads transposed. */
function storedInOut(arch: Architecture, module: string): boolean {
  return arch.transposedForDecoding.includes(`${module}.weight`);
}

function matchesName(module: string, name: string): boolean {
  return module === name || module.endsWith(`.${name}`);
}

/** The modules `config.target_modules` adapts, in parameter order; refuses a selection that adapts nothing. */
export function targetedModules(arch: Architecture, config: Pick<LoraConfig, "target_modules">): string[] {
  const all = linearModules(arch);
  const t = config.target_modules;
  const picked =
    t === ALL_LINEAR ? all
    : typeof t === "string" ? all.filter((m) => new RegExp(`^(?:${t})$`).test(m))
    : all.filter((m) => t.some((name) => matchesName(m, name)));
  if (picked.length === 0) throw new LoraError(`target_modules ${JSON.stringify(t)} matches none of the model's linear projections (${shortNames(all).join(", ")})`);
  return picked;
}

function shortNames(modules: string[]): string[] {
  return [...new Set(modules.map((m) => m.slice(m.lastIndexOf(".") + 1)))].sort();
}

/**
 * target_modules as an adapter_config.json stores it, from what a user asked for: null = PEFT's
 * default for the model_type, ["all-linear"] = the short names of every linear projection (what
 * PEFT writes for it), else the names given, each of which must adapt something.
 */
export function resolveTargetModules(arch: Architecture, requested: readonly string[] | null): string[] {
  if (requested === null) return [...familyOf(arch.config).defaultLoraTargets];
  if (requested.length === 1 && requested[0] === ALL_LINEAR) return shortNames(linearModules(arch));
  const all = linearModules(arch);
  for (const name of requested) {
    if (!all.some((m) => matchesName(m, name))) throw new LoraError(`lora_target_modules: ${name} is not a linear projection of this ${arch.config.model_type} model (${shortNames(all).join(", ")}, or ${ALL_LINEAR})`);
  }
  return [...requested];
}

/** The head names PEFT adds to every SEQ_CLS adapter's modules_to_save, whichever the model has. */
const PEFT_CLASSIFIER_HEADS = ["classifier", "score"];

/** Parameter names of `modules_to_save` (each module's weight, and its bias when it has one); refuses names that match nothing (but PEFT's classifier heads). */
export function savedModuleParams(arch: Architecture, config: Pick<LoraConfig, "modules_to_save">): string[] {
  const names: string[] = [];
  for (const module of config.modules_to_save ?? []) {
    const params = Object.keys(arch.paramShapes).filter((p) => /\.(weight|bias)$/.test(p) && matchesName(p.slice(0, p.lastIndexOf(".")), module));
    if (params.length === 0 && PEFT_CLASSIFIER_HEADS.includes(module)) continue;
    if (params.length === 0) throw new LoraError(`modules_to_save: ${module} names no module of this ${arch.config.model_type} model`);
    // A tied embedding is also the output head, where PEFT would train a copy of the input side only.
    const tiedEmbedding = arch.lmHeadName !== "lm_head.weight" && params.includes(arch.lmHeadName);
    if (tiedEmbedding) throw new LoraError(`modules_to_save: ${module} is tied to the output head here; training it whole is not supported`);
    names.push(...params);
  }
  return names;
}

/** in and out features of a targeted module's weight. */
function features(arch: Architecture, module: string): { fanIn: number; fanOut: number } {
  const [rows, cols] = arch.paramShapes[`${module}.weight`]! as [number, number];
  return storedInOut(arch, module) ? { fanIn: rows, fanOut: cols } : { fanIn: cols, fanOut: rows };
}

/**
 * A fresh adapter, as PEFT initialises one: A ~ kaiming_uniform(a = √5), i.e. U(−1/√in, 1/√in),
 * B = 0 (so training starts at the base model), seeded; `modules_to_save` start as the base's.
 */
export function initAdapter(arch: Architecture, config: LoraConfig, base: Params, seed: number): Params {
  const rng = new HostRng(seed);
  const adapter: Params = {};
  for (const module of targetedModules(arch, config)) {
    const { fanIn, fanOut } = features(arch, module);
    const bound = 1 / Math.sqrt(fanIn);
    const { a, b } = loraWeightNames(module);
    adapter[a] = fromHost(Float32Array.from({ length: config.r * fanIn }, () => (2 * rng.next() - 1) * bound), [config.r, fanIn]);
    adapter[b] = np.zeros([fanOut, config.r]);
  }
  // Arrays are immutable: the trained copy starts as the base's array and diverges at the first update.
  for (const name of savedModuleParams(arch, config)) adapter[name] = base[name]!.ref;
  return adapter;
}

/** The shapes an adapter's tensors must have: A [r, in], B [out, r] per targeted module, and the saved modules' own. */
export function adapterShapes(arch: Architecture, config: LoraConfig): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const module of targetedModules(arch, config)) {
    const { fanIn, fanOut } = features(arch, module);
    const { a, b } = loraWeightNames(module);
    shapes[a] = [config.r, fanIn];
    shapes[b] = [fanOut, config.r];
  }
  for (const name of savedModuleParams(arch, config)) shapes[name] = arch.paramShapes[name]!;
  return shapes;
}

/**
 * The architecture with the adapter attached: its passes run every targeted module's LoRA path
 * whenever the params hold it, scaled by s, with dropout when the pass carries a key
 * (ForwardBatch.dropoutKey: training passes only).
 */
export function withAdapter(arch: Architecture, config: LoraConfig): Architecture {
  const modules = targetedModules(arch, config);
  const index = new Map(modules.map((m, i) => [m, i]));
  const scaling = loraScaling(config);
  return {
    ...arch,
    body: (params, batch, past) => {
      const key = config.lora_dropout > 0 ? batch.dropoutKey : undefined;
      const lora: LoraPass = key ? { scaling, dropout: config.lora_dropout, keys: random.split(key, modules.length), index } : { scaling, dropout: 0, index };
      return arch.body(params, { ...batch, lora }, past);
    },
  };
}

/**
 * The merged weights of each targeted module, W + s·B·A ((B·A)ᵀ for a weight stored [in, out]), as
 * PEFT's merge computes them, and the saved modules' trained copies: the entries of `base` they
 * replace. Traced; `base` and `adapter` are read, not consumed.
 */
export function mergedWeights(arch: Architecture, config: LoraConfig, base: Params, adapter: Params): Params {
  const scaling = loraScaling(config);
  const out: Params = {};
  for (const module of targetedModules(arch, config)) {
    const { a, b } = loraWeightNames(module);
    const delta = np.matmul(adapter[b]!.ref, adapter[a]!.ref); // [out, in]
    const name = `${module}.weight`;
    out[name] = base[name]!.ref.add((storedInOut(arch, module) ? delta.transpose() : delta).mul(scaling));
  }
  for (const name of savedModuleParams(arch, config)) out[name] = adapter[name]!.ref;
  return out;
}

/**
 * The base with the adapter merged in, for passes that need no adapter (generation, evaluation,
 * `rlhf merge`): consumes `base` and `adapter` (each replaced weight is freed as its merge is
 * written, so the peak is the base plus the adapter and about one merged matrix). A saved module
 * the base lacks (a classifier's head over a causal LM) comes from the adapter alone.
 */
export function mergeAdapter(arch: Architecture, config: LoraConfig, base: Params, adapter: Params): Params {
  const replaced = [...targetedModules(arch, config).map((m) => `${m}.weight`), ...savedModuleParams(arch, config)].filter((n) => n in base);
  const merge = compileConsuming((b: Params, a: Params) => mergedWeights(arch, config, b, a));
  const merged = merge(Object.fromEntries(replaced.map((n) => [n, base[n]!])), adapter);
  merge.dispose();
  return { ...base, ...merged };
}
