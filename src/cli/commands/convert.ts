import type { Command } from "../command.ts";
import { baseFlag, parseFlags, requireFlag, UsageError } from "../command.ts";
import { disposeModel, loadModel, resolveTokenizer, saveModel, type LoadOptions } from "../../models/load.ts";
import { isAdapterDir } from "../../models/adapter-files.ts";
import { checkWritable } from "../../io/atomic.ts";
import { GGUF_TYPES, writeGgufAdapter, writeGgufModel, type GgufFileType } from "../../models/gguf-export.ts";

const usage = `Usage: rlhf convert --model PATH --output DIR [--tokenizer PATH]
       rlhf convert --to gguf [--type f32|f16|q8_0] --model PATH --output FILE.gguf

Writes a Hugging Face-layout directory (config.json, model.safetensors, tokenizer files,
generation_config.json) as transformers writes it: float32 weights, a tied embedding stored once.
Reads llama2.c .bin files and HF directories (a directory's generation_config.json is kept), and
LoRA adapter directories, whose base is written with the adapter merged in (as rlhf merge does).

--to gguf writes a GGUF v3 file for llama.cpp instead (Llama, Qwen2 and GPT-2, with the tokenizer):
a model as a GGUF model, a LoRA adapter directory as a GGUF LoRA adapter for its base's GGUF
(llama.cpp applies it at run time: llama-cli --lora, node-llama-cpp's lora option).`;

const FORMATS = ["hf", "gguf"] as const;

const flags = {
  model: { type: "string", help: "model to convert: llama2.c .bin, HF directory or LoRA adapter directory <PATH>" },
  ...baseFlag,
  output: { type: "string", help: "directory (hf) or file (gguf) to write, replaced atomically if it exists <PATH>" },
  to: { type: "string", default: "hf", help: `output format: ${FORMATS.join(" or ")} <FORMAT>` },
  type: { type: "string", default: "f32", help: `GGUF weight type: ${GGUF_TYPES.join(", ")} (vectors stay f32; q8_0 rows that are not whole 32-value blocks are f16) <TYPE>` },
  tokenizer: { type: "string", help: "tokenizer to include <PATH> (default: the one found for the model)" },
  "no-tokenizer": { type: "boolean", help: "write only the weights and config (hf only)" },
} as const;

/** Loads `path` (an adapter merged into its base) and writes it as a Hugging Face directory. */
export async function writeHfCopy(path: string, output: string, options: LoadOptions & { tokenizer?: string | undefined; noTokenizer?: boolean | undefined }): Promise<void> {
  const model = await loadModel(path, options);
  const tokenizer = options.noTokenizer ? undefined : await resolveTokenizer(model, options.tokenizer);
  await saveModel(output, model.config, model.params, { tokenizer, ...(model.generationConfig ? { generationConfig: model.generationConfig } : {}) });
  disposeModel(model);
  process.stderr.write(`wrote ${output}\n`);
}

function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  if (!allowed.includes(value as T)) throw new UsageError(`--${flag} must be one of ${allowed.join(", ")}, got "${value}"`);
  return value as T;
}

export const command: Command = {
  summary: "convert a checkpoint (llama2.c .bin, HF directory or LoRA adapter) into a Hugging Face directory or a GGUF file for llama.cpp",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const [model, output] = [requireFlag(v.model, "model"), requireFlag(v.output, "output")];
    const to = oneOf(v.to ?? "hf", FORMATS, "to");
    if (to === "hf") {
      if (v.type !== "f32") throw new UsageError("--type applies to --to gguf only (a Hugging Face copy is float32)");
      await writeHfCopy(model, output, { base: v.base, tokenizer: v.tokenizer, noTokenizer: v["no-tokenizer"] });
      return 0;
    }
    if (v["no-tokenizer"]) throw new UsageError("--no-tokenizer applies to --to hf only (llama.cpp needs the tokenizer in the GGUF file)");
    const type: GgufFileType = oneOf(v.type ?? "f32", GGUF_TYPES, "type");
    checkWritable(output); // a directory in the way fails now, not after the conversion
    if (isAdapterDir(model)) await writeGgufAdapter(model, output, { base: v.base, type });
    else await writeGgufModel(model, output, { type, tokenizer: v.tokenizer });
    process.stderr.write(`wrote ${output}\n`);
    return 0;
  },
};
