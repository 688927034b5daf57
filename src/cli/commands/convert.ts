import type { Command } from "../command.ts";
import { baseFlag, parseFlags, requireFlag } from "../command.ts";
import { disposeModel, loadModel, resolveTokenizer, saveModel, type LoadOptions } from "../../models/load.ts";

const usage = `Usage: rlhf convert --model PATH --output DIR [--tokenizer PATH]

Writes a Hugging Face-layout directory (config.json, model.safetensors, tokenizer files,
generation_config.json) as transformers writes it: float32 weights, a tied embedding stored once.
Reads llama2.c .bin files and HF directories (a directory's generation_config.json is kept), and
LoRA adapter directories, whose base is written with the adapter merged in (as rlhf merge does).`;

const flags = {
  model: { type: "string", help: "model to convert: llama2.c .bin, HF directory or LoRA adapter directory <PATH>" },
  ...baseFlag,
  output: { type: "string", help: "directory to write (replaced atomically if it exists) <DIR>" },
  tokenizer: { type: "string", help: "tokenizer to include <PATH> (default: the one found for the model)" },
  "no-tokenizer": { type: "boolean", help: "write only the weights and config" },
} as const;

/** Loads `path` (an adapter merged into its base) and writes it as a Hugging Face directory. */
export async function writeHfCopy(path: string, output: string, options: LoadOptions & { tokenizer?: string | undefined; noTokenizer?: boolean | undefined }): Promise<void> {
  const model = await loadModel(path, options);
  const tokenizer = options.noTokenizer ? undefined : await resolveTokenizer(model, options.tokenizer);
  await saveModel(output, model.config, model.params, { tokenizer, ...(model.generationConfig ? { generationConfig: model.generationConfig } : {}) });
  disposeModel(model);
  process.stderr.write(`wrote ${output}\n`);
}

export const command: Command = {
  summary: "convert a checkpoint (llama2.c .bin, HF directory or LoRA adapter) into a Hugging Face directory",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    await writeHfCopy(requireFlag(v.model, "model"), requireFlag(v.output, "output"), { base: v.base, tokenizer: v.tokenizer, noTokenizer: v["no-tokenizer"] });
    return 0;
  },
};
