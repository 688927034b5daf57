// Greedy generation speed: llama.cpp (node-llama-cpp's CPU build, from a GGUF that
// `rlhf convert --to gguf` wrote) against this project's jax-js generator, on the same prompt ids.
// Models: stories260K, tinystories-656k, and SmolLM2-135M's shape with random weights (its
// vocabulary sized by the Llama 2 tokenizer padded to 49,152 rows; the ids are what is timed).
//
//   npm run bench:llama-cpp -- [--new-tokens 64] [--prompt-tokens 64] [--batch 1,8] [--runs 3] [--types f32,q8_0] [--only NAME]
//
// Each row: median over --runs (after one untimed warm-up) of generating --new-tokens for --batch
// prompts of --prompt-tokens, as new tokens per second (prefill included in the time). Both engines
// get the same number of CPU threads: jax-js's kernel threads (RLHF_THREADS sets them; on a busy machine
// RLHF_THREADS=1 is much faster for both: llama.cpp's threads wait for each other at every operation,
// and a descheduled one stalls the rest).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { release } from "../src/engine/arrays.ts";
import { HostRng } from "../src/engine/random.ts";
import { kernelThreadCount } from "../src/engine/worker-shim.ts";
import { initEngine } from "../src/engine/runtime.ts";
import { Generator } from "../src/generation/generate.ts";
import { LlamaCppGenerator } from "../src/generation/llama-cpp.ts";
import { architectureFor } from "../src/models/architecture.ts";
import { readModelConfig } from "../src/cli/config-file.ts";
import { writeGgufModel, type GgufFileType } from "../src/models/gguf-export.ts";
import { loadModel, saveModel } from "../src/models/load.ts";
import { initParams } from "../src/models/params.ts";
import { medianMs } from "../src/bench/standard.ts";

const { values } = parseArgs({
  options: {
    "new-tokens": { type: "string", default: "64" },
    "prompt-tokens": { type: "string", default: "64" },
    batch: { type: "string", default: "1,8" },
    runs: { type: "string", default: "3" },
    types: { type: "string", default: "f32,q8_0" },
    only: { type: "string" },
  },
});
const newTokens = Number(values["new-tokens"]);
const promptTokens = Number(values["prompt-tokens"]);
const batches = values.batch.split(",").map(Number);
const runs = Number(values.runs);
const types = values.types.split(",") as GgufFileType[];
const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const shared = (p: string) => resolve(root, "../shared/data", p);

await initEngine();
const threads = kernelThreadCount();
const work = mkdtempSync(join(tmpdir(), "bench-llama-cpp-"));

/** A random SmolLM2-135M-shaped model saved as an HF directory (weights only; the tokenizer is passed at conversion). */
async function smollmDir(): Promise<string> {
  const { config } = await readModelConfig("smollm2-135m");
  const params = initParams(architectureFor(config), 0);
  const dir = join(work, "smollm2-135m");
  await saveModel(dir, config, params);
  release(params);
  return dir;
}

const models: { name: string; path: () => Promise<string>; tokenizer?: string }[] = [
  { name: "stories260K", path: async () => shared("llama2c/stories260K.bin") },
  { name: "tinystories-656k", path: async () => shared("tinystories-656k") },
  { name: "smollm2-135m (random)", path: smollmDir, tokenizer: shared("llama2c/tokenizer.bin") },
];

function prompts(batch: number, vocab: number): number[][] {
  const rng = new HostRng(1);
  return Array.from({ length: batch }, () => [1, ...Array.from({ length: promptTokens - 1 }, () => 3 + rng.int(Math.min(vocab, 500) - 3))]);
}

const rows: string[] = [];
const row = (cells: (string | number)[]) => {
  const line = `| ${cells.join(" | ")} |`;
  rows.push(line);
  console.log(line);
};
console.log(`${newTokens} new tokens after ${promptTokens}-token prompts, ${threads} threads, median of ${runs}`);
row(["model", "engine", "batch", "ms", "new tokens/s"]);
row(["---", "---", "---", "---", "---"]);
try {
  for (const m of models) {
    if (values.only && !m.name.startsWith(values.only)) continue;
    const path = await m.path();
    const model = await loadModel(path);
    const generator = new Generator(model.arch);
    for (const batch of batches) {
      const ps = prompts(batch, model.arch.vocabSize);
      const ms = await medianMs(runs, 1, async () => void (await generator.generate(model.params, ps, { temperature: 0, maxNewTokens: newTokens })));
      row([m.name, "jax-js (f32)", batch, ms.toFixed(0), ((batch * newTokens) / (ms / 1000)).toFixed(1)]);
    }
    generator.dispose();
    release(model.params);
    for (const type of types) {
      const gguf = join(work, `${m.name.split(" ")[0]}-${type}.gguf`);
      await writeGgufModel(path, gguf, { type, tokenizer: m.tokenizer });
      for (const batch of batches) {
        const native = await LlamaCppGenerator.open(gguf, { contextSize: promptTokens + newTokens, threads, sequences: batch });
        const ps = prompts(batch, model.arch.vocabSize);
        const ms = await medianMs(runs, 1, async () => {
          const out = await native.greedyBatch(ps, newTokens);
          if (out.some((g) => g.completionIds.length !== newTokens)) throw new Error("llama.cpp stopped early");
        });
        row([m.name, `llama.cpp (${type})`, batch, ms.toFixed(0), ((batch * newTokens) / (ms / 1000)).toFixed(1)]);
        await native.dispose();
      }
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(0);
