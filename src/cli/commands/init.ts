import { existsSync } from "node:fs";
import type { Command } from "../command.ts";
import { numberFlag, parseFlags, requireFlag, UsageError } from "../command.ts";
import { readModelConfig, shippedConfigNames } from "../config-file.ts";
import { initEngine } from "../../engine/runtime.ts";
import { release } from "../../engine/arrays.ts";
import { architectureFor } from "../../models/architecture.ts";
import { initParams } from "../../models/params.ts";
import { saveModel } from "../../models/load.ts";
import { loadTokenizer } from "../../tokenizers/load.ts";

const usage = `Usage: rlhf init --config CONFIG.json --output DIR [--tokenizer PATH] [--seed S]

A model with freshly initialised weights (the architecture's init rule, deterministic in the seed)
from a Hugging Face config.json, written as a Hugging Face directory: config.json, model.safetensors
(float32), generation_config.json, and the tokenizer's files with --tokenizer. For pretraining from
scratch and for runs at real sizes without real weights. --config also takes the name of a config
shipped in configs/ (${shippedConfigNames().join(", ")}).`;

const flags = {
  config: { type: "string", help: "the model's config.json, or a shipped config's name <CONFIG>" },
  output: { type: "string", help: "directory to create (must not exist) <DIR>" },
  tokenizer: { type: "string", help: "tokenizer to include; its vocabulary must fit the config's <PATH>" },
  seed: { type: "string", default: "0", help: "seed of the initial weights <S>" },
} as const;

export const command: Command = {
  summary: "create a model with freshly initialised weights from a config.json",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const { path, config } = await readModelConfig(requireFlag(v.config, "config"));
    const output = requireFlag(v.output, "output");
    // Random weights over a trained model would be a costly accident, so an existing path is refused.
    if (existsSync(output)) throw new UsageError(`${output} already exists; init writes a new model and replaces nothing (remove it or choose another --output)`);
    const seed = numberFlag(v.seed, "seed", 0, { min: 0, max: 2 ** 32 - 1, integer: true });
    const arch = architectureFor(config);
    const tokenizer = v.tokenizer === undefined ? undefined : await loadTokenizer(v.tokenizer).catch((err: Error) => {
      throw new UsageError(err.message); // a missing or unreadable tokenizer is bad input, not a bug
    });
    if (tokenizer && tokenizer.vocabSize > arch.vocabSize) {
      throw new UsageError(`${v.tokenizer}: the tokenizer has ${tokenizer.vocabSize} tokens but ${path} has vocab_size ${arch.vocabSize}`);
    }

    const count = Object.values(arch.paramShapes).reduce((n, shape) => n + shape.reduce((a, b) => a * b, 1), 0);
    const started = performance.now();
    const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
    process.stderr.write(`init: ${count.toLocaleString("en-US")} parameters (${gb(4 * count)} in float32) from ${path}, seed ${seed}…\n`);
    await initEngine();
    const params = initParams(arch, seed);
    process.stderr.write(`init: initialised in ${elapsed()}; writing ${output}…\n`);
    await saveModel(output, config, params, { tokenizer });
    release(params);
    process.stderr.write(`wrote ${output} in ${elapsed()}\n`);
    return 0;
  },
};

function gb(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}
