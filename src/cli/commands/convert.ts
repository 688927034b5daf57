import type { Command } from "../command.ts";
import { parseFlags, requireFlag } from "../command.ts";
import { disposeModel, loadModel, resolveTokenizer, saveModel } from "../../models/load.ts";

const usage = `Usage: rlhf convert --model PATH --output DIR [--tokenizer PATH]

Writes a Hugging Face-layout directory (config.json, model.safetensors, tokenizer files,
generation_config.json) as transformers writes it: float32 weights, a tied embedding stored once.
Reads llama2.c .bin files and HF directories (a directory's generation_config.json is kept).`;

const flags = {
  model: { type: "string", help: "model to convert: llama2.c .bin or HF directory <PATH>" },
  output: { type: "string", help: "directory to write (replaced atomically if it exists) <DIR>" },
  tokenizer: { type: "string", help: "tokenizer to include <PATH> (default: the one found for the model)" },
  "no-tokenizer": { type: "boolean", help: "write only the weights and config" },
} as const;

export const command: Command = {
  summary: "convert a checkpoint (llama2.c .bin or HF directory) into a Hugging Face directory",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const output = requireFlag(v.output, "output");
    const model = await loadModel(requireFlag(v.model, "model"));
    const tokenizer = v["no-tokenizer"] ? undefined : await resolveTokenizer(model, v.tokenizer);
    await saveModel(output, model.config, model.params, { tokenizer, ...(model.generationConfig ? { generationConfig: model.generationConfig } : {}) });
    disposeModel(model);
    process.stderr.write(`wrote ${output}\n`);
    return 0;
  },
};
