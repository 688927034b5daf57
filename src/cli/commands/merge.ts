import type { Command } from "../command.ts";
import { baseFlag, parseFlags, requireFlag, UsageError } from "../command.ts";
import { isAdapterDir } from "../../models/adapter-files.ts";
import { writeHfCopy } from "./convert.ts";

const usage = `Usage: rlhf merge --adapter DIR --output DIR [--base PATH] [--tokenizer PATH]

Merges a LoRA adapter (PEFT's adapter_config.json + adapter_model.safetensors) into its base, as
PEFT's merge_and_unload does: every adapted weight W becomes W + s·B·A, s = lora_alpha / r
(lora_alpha / √r with use_rslora), and modules_to_save replace the base's. Writes the full model
as a Hugging Face directory (with the adapter's tokenizer, else the base's); the base's files are
not changed. The base is --base, else the adapter's base_model_name_or_path.`;

const flags = {
  adapter: { type: "string", help: "LoRA adapter directory <DIR>" },
  ...baseFlag,
  output: { type: "string", help: "directory to write (replaced atomically if it exists) <DIR>" },
  tokenizer: { type: "string", help: "tokenizer to include <PATH> (default: the adapter's, else the base's)" },
} as const;

export const command: Command = {
  summary: "merge a LoRA adapter into its base and write the full model (PEFT's merge_and_unload)",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const adapter = requireFlag(v.adapter, "adapter");
    if (!isAdapterDir(adapter)) throw new UsageError(`--adapter ${adapter}: no adapter_config.json there; rlhf merge takes a PEFT LoRA adapter directory`);
    await writeHfCopy(adapter, requireFlag(v.output, "output"), { base: v.base, tokenizer: v.tokenizer });
    return 0;
  },
};
