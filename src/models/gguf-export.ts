// Models and LoRA adapters as GGUF files for llama.cpp (`rlhf convert --to gguf`): the weights under
// llama.cpp's names and layout (gguf-layout.ts), the hparams, and the tokenizer (tokenizers/gguf-vocab.ts).
// Types follow convert_hf_to_gguf.py: vectors (norms, biases) stay f32; matrices take the requested
// type, q8_0 falling back to f16 for rows that are not a whole number of 32-value blocks.
// Adapters become GGUF LoRA adapters (convert_lora_to_gguf.py's form), applied by llama.cpp at run
// time on the base model's GGUF (llama_adapter_lora_init), unmerged.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { CheckpointError } from "../io/errors.ts";
import { gguf, writeGguf, type GgufTensor, type GgufValue } from "../io/gguf.ts";
import { fitsBlocks, type GgmlType } from "../io/ggml-types.ts";
import { permuteRotaryRows } from "../io/llama2c.ts";
import type { HostTensor, TensorMap } from "../io/tensors.ts";
import { ggufTokenizerMetadata } from "../tokenizers/gguf-vocab.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { ModelConfig } from "./config.ts";
import { readAdapterTensors } from "./adapter-files.ts";
import { ggufLayoutOf, ggufModuleName, type GgufLayout } from "./gguf-layout.ts";
import { describeModel, readCheckpoint, resolveTokenizer, type LoadOptions } from "./load.ts";
import { adapterShapes, type LoraConfig } from "./lora.ts";
import { checkedTensors, paramsToTensors } from "./params.ts";
import type { Params } from "./types.ts";

export const GGUF_TYPES = ["f32", "f16", "q8_0"] as const;
export type GgufFileType = (typeof GGUF_TYPES)[number];

/** llama.cpp's llama_ftype for a file of mostly `type`. */
const FILE_TYPE: Record<GgufFileType, number> = { f32: 0, f16: 1, q8_0: 7 };

/** The type a tensor of `shape` is stored as in a file of `requested` type. */
export function ggufTensorType(shape: readonly number[], requested: GgufFileType): GgmlType {
  if (shape.length < 2) return "f32";
  return fitsBlocks(shape[shape.length - 1]!, requested) ? requested : "f16";
}

/** A parameter name split into its module and the tensor's own name (`weight`, `bias`). */
function splitName(name: string): { module: string; suffix: string } {
  const dot = name.lastIndexOf(".");
  return { module: name.slice(0, dot), suffix: name.slice(dot + 1) };
}

function transpose2d(t: HostTensor): HostTensor {
  const [rows, cols] = t.shape as [number, number];
  const out = new Float32Array(t.data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c]!;
  return { shape: [cols, rows], data: out };
}

/** A weight (or LoRA B) whose output rows llama.cpp orders differently, reordered: rotary rows back to interleaved per head. */
function rotaryInterleaved(layout: GgufLayout<ModelConfig>, config: ModelConfig, module: string, t: HostTensor): HostTensor {
  const heads = layout.rotaryHeads?.(config, module);
  return heads === undefined ? t : permuteRotaryRows(t, heads, "interleaved");
}

function commonMetadata(layout: GgufLayout<ModelConfig>, kind: "model" | "adapter", name: string, type: GgufFileType): Map<string, GgufValue> {
  const m = new Map<string, GgufValue>([
    ["general.architecture", gguf.string(layout.arch)],
    ["general.type", gguf.string(kind)],
    ["general.name", gguf.string(name)],
    ["general.file_type", gguf.u32(FILE_TYPE[type])],
  ]);
  if (type === "q8_0") m.set("general.quantization_version", gguf.u32(2)); // GGML_QNT_VERSION
  return m;
}

/** Reports every tenth of the tensors written, on stderr. */
function withProgress(tensors: GgufTensor[], path: string): GgufTensor[] {
  let shown = 0;
  return tensors.map((t, i) => ({
    ...t,
    values: () => {
      const tenth = Math.floor((10 * (i + 1)) / tensors.length);
      if (tenth > shown && tensors.length >= 20) process.stderr.write(`${path}: ${i + 1}/${tensors.length} tensors\n`);
      shown = tenth;
      return t.values();
    },
  }));
}

/** Writes a llama2.c file or HF directory as a GGUF model with its tokenizer. */
export async function writeGgufModel(source: string, path: string, options: { type: GgufFileType; tokenizer?: string | undefined }): Promise<void> {
  const checkpoint = await readCheckpoint(source);
  const tokenizer = await resolveTokenizer(checkpoint, options.tokenizer);
  await writeGgufFromTensors(path, checkpoint.config, checkpoint.tensors, tokenizer, {
    type: options.type,
    name: basename(source).replace(/\.bin$/, ""),
    source: options.tokenizer ?? source,
  });
}

/**
 * `params` written (quietly) as a GGUF in a private temp directory for llama.cpp to load, as the
 * project's own exports are (serve, bench); remove() deletes the directory.
 */
export async function writeTempGguf(config: ModelConfig, params: Params, tokenizer: Tokenizer, options: { type: GgufFileType; name: string; source: string }): Promise<{ path: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "rlhf-gguf-"));
  const path = join(dir, `${options.name}.gguf`);
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await writeGgufFromTensors(path, config, await paramsToTensors(params), tokenizer, { ...options, quiet: true });
  } catch (err) {
    await remove();
    throw err;
  }
  return { path, remove };
}

/**
 * Writes weights held in memory (parameter names and shapes of `config`'s architecture) as a GGUF
 * model; `source` names them in errors. `quiet` (the project's own exports, which hand llama.cpp
 * token ids): no progress, no warning about text llama.cpp could not tokenize.
 */
export async function writeGgufFromTensors(path: string, config: ModelConfig, tensors: TensorMap, tokenizer: Tokenizer, options: { type: GgufFileType; name: string; source: string; quiet?: boolean }): Promise<void> {
  const { source } = options;
  const layout = ggufLayoutOf(config);
  const metadata = commonMetadata(layout, "model", options.name, options.type);
  for (const [key, value] of layout.hparams(config, source)) metadata.set(key, value);
  for (const [key, value] of ggufTokenizerMetadata(tokenizer, config.vocab_size, source, { quiet: options.quiet ?? false })) metadata.set(key, value);
  const out: GgufTensor[] = [...tensors].map(([name, t]) => {
    const { module, suffix } = splitName(name);
    const transposed = t.shape.length === 2 && (layout.transposed?.(module) ?? false);
    const shape = transposed ? [...t.shape].reverse() : t.shape;
    return {
      name: `${ggufModuleName(layout, module, source)}.${suffix}`,
      shape,
      type: ggufTensorType(shape, options.type),
      values: () => (transposed ? transpose2d(t) : rotaryInterleaved(layout, config, module, t)).data,
    };
  });
  await writeGguf(path, metadata, options.quiet ? out : withProgress(out, path));
}

/** Writes a LoRA adapter directory as a GGUF LoRA adapter for its base's GGUF (writeGgufAdapterFromTensors). */
export async function writeGgufAdapter(dir: string, path: string, options: LoadOptions & { type: GgufFileType }): Promise<void> {
  const described = await describeModel(dir, options);
  const lora = described.adapter!.config;
  const tensors = checkedTensors({ ...described.arch, paramShapes: adapterShapes(described.arch, lora) }, await readAdapterTensors(dir), dir);
  await writeGgufAdapterFromTensors(path, described.config, lora, tensors, { type: options.type, name: basename(dir), source: dir });
}

/**
 * Writes an adapter held in memory (PEFT's parameter names, checked shapes) as a GGUF LoRA adapter:
 * tensors `<base tensor>.lora_a` (A [r, in]) and `.lora_b` (B [out, r], rotary rows reordered as
 * the base's are) and adapter.lora.alpha, which llama.cpp turns into the scale alpha / r (rsLoRA's
 * alpha / √r is written as alpha·√r for that reason). `source` names the adapter in errors.
 */
export async function writeGgufAdapterFromTensors(path: string, config: ModelConfig, lora: LoraConfig, tensors: TensorMap, options: { type: GgufFileType; name: string; source: string; quiet?: boolean }): Promise<void> {
  const { source } = options;
  if (!hasGgufLoraForm(lora)) {
    throw new CheckpointError(`${source}: only causal-LM adapters without modules_to_save have a GGUF LoRA form (this one is ${lora.task_type}${lora.modules_to_save ? `, saving ${lora.modules_to_save.join(", ")}` : ""})`);
  }
  const layout = ggufLayoutOf(config);
  const metadata = commonMetadata(layout, "adapter", options.name, options.type);
  metadata.set("adapter.type", gguf.string("lora"));
  metadata.set("adapter.lora.alpha", gguf.f32(lora.use_rslora ? lora.lora_alpha * Math.sqrt(lora.r) : lora.lora_alpha));
  const out: GgufTensor[] = [...tensors].map(([name, t]) => {
    const match = /^(.*)\.lora_([AB])\.weight$/.exec(name);
    if (!match) throw new CheckpointError(`${source}: ${name} is not a LoRA factor (…lora_A.weight or …lora_B.weight)`);
    const [module, which] = [match[1]!, match[2]!];
    return {
      name: `${ggufModuleName(layout, module, source)}.weight.lora_${which.toLowerCase()}`,
      shape: t.shape,
      type: ggufTensorType(t.shape, options.type),
      // A [r, in] and B [out, r] are the Linear-sense factors even over GPT-2's Conv1D, so only B's rows move.
      values: () => (which === "B" ? rotaryInterleaved(layout, config, module, t).data : t.data),
    };
  });
  await writeGguf(path, metadata, options.quiet ? out : withProgress(out, path));
}

/** llama.cpp applies low-rank factors only: a causal LM's adapter that trains no module whole. */
export function hasGgufLoraForm(lora: LoraConfig): boolean {
  return lora.task_type === "CAUSAL_LM" && (lora.modules_to_save ?? []).length === 0;
}
