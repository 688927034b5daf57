// One PPO iteration with LoRA, rollouts from the built-in jax-js generator against llama.cpp, split
// into generation (sampling, with llama.cpp's weight sync) / scoring (log-probs, values, rewards,
// advantages) / update (num_ppo_epochs × num_mini_batches optimizer steps), on:
// - smollm2-135m: SmolLM2-135M's shape with random weights and GPT-2's byte-level BPE cut to its
//   first 49,152 ids (SmolLM2's own tokenizer is a byte-level BPE of that size; every id a random
//   model samples decodes);
// - stories260K: the real checkpoint and its 512-token vocabulary.
//
//   npm run bench:ppo-llama-cpp -- [--model smollm2-135m|stories260K] [--steps 3] [--batch 8] [--response-length 53] [--epochs 4] [--syncs adapter,merged]
//   npm run bench:ppo-llama-cpp -- --sync-only [--model …] [--steps 3] [--syncs adapter,merged]
//
// --sync-only times what each sync costs a step on its own: a llama.cpp rollout of one new token
// for one prompt (the first call, which exports and loads the base for adapter sync, apart).
//
// The PPO settings are the project's defaults (TRL's: 4 epochs, 1 mini-batch, temperature 0.7; the
// update's share grows with --epochs, the only phase it changes), the
// adapter TRL's LoRA defaults on every linear projection (r 16, alpha 32), dropout off, a value
// adapter on the same base, a reward of the share of "e" in the text. The variants run alternated
// step by step (after one untimed warm-up step each, which compiles), so a machine whose load
// changes slows them alike; each row is the median over --steps. llama.cpp gets 1 thread, as jax-js
// does under RLHF_THREADS=1 (on a shared machine more threads stall: see bench-llama-cpp.ts).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { release } from "../src/engine/arrays.ts";
import { initEngine } from "../src/engine/runtime.ts";
import { kernelThreadCount } from "../src/engine/worker-shim.ts";
import { createRolloutEngine, LORA_SYNCS, type LoraSync } from "../src/generation/rollout-engine.ts";
import { readModelConfig } from "../src/cli/config-file.ts";
import { architectureFor } from "../src/models/architecture.ts";
import { loadModel, type LoadedModel } from "../src/models/load.ts";
import { initParams } from "../src/models/params.ts";
import { loadTokenizer } from "../src/tokenizers/load.ts";
import { gpt2TokenizerJson, HfTokenizer } from "../src/tokenizers/hf.ts";
import type { Tokenizer } from "../src/tokenizers/tokenizer.ts";
import { peftDefaults } from "../src/train/peft-config.ts";
import { policyModels } from "../src/rl/policy-models.ts";
import { valueAdapterOn } from "../src/rl/ppo-value.ts";
import { defaultPpoRunConfig } from "../src/rl/ppo-config.ts";
import { PpoTrainer } from "../src/rl/ppo-trainer.ts";
import { ModuleRewardSource } from "../src/rl/reward-source.ts";
import type { PhaseSeconds } from "../src/rl/on-policy-run.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "smollm2-135m" },
    steps: { type: "string", default: "3" },
    batch: { type: "string", default: "8" },
    "response-length": { type: "string", default: "53" },
    epochs: { type: "string", default: "4" },
    syncs: { type: "string", default: "adapter,merged" },
    "sync-only": { type: "boolean", default: false },
  },
});
const steps = Number(values.steps);
const syncs = values.syncs.split(",").filter((s) => s !== "") as LoraSync[];
for (const s of syncs) if (!LORA_SYNCS.includes(s)) throw new Error(`--syncs: ${s} is not one of ${LORA_SYNCS.join(", ")}`);
const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const shared = (p: string) => resolve(root, "../shared/data", p);

await initEngine();

/** GPT-2's byte-level BPE cut to its first `size` ids (the 256 bytes, then merges in order, as the vocabulary numbers them). */
function gpt2TokenizerOf(size: number): Tokenizer {
  const vocab = JSON.parse(readFileSync(shared("tokenizers/gpt2-vocab.json"), "utf8")) as Record<string, number>;
  const merges = readFileSync(shared("tokenizers/gpt2-merges.txt"), "utf8").split("\n").filter((l) => l !== "" && !l.startsWith("#version"));
  return new HfTokenizer(gpt2TokenizerJson(Object.fromEntries(Object.entries(vocab).filter(([, id]) => id < size)), merges.slice(0, size - 256)), {});
}

async function benchModel(): Promise<{ model: LoadedModel; tokenizer: Tokenizer }> {
  if (values.model === "stories260K") return { model: await loadModel(shared("llama2c/stories260K.bin")), tokenizer: await loadTokenizer(shared("llama2c/tok512.bin")) };
  if (values.model !== "smollm2-135m") throw new Error(`--model: expected smollm2-135m or stories260K, got ${values.model}`);
  const { config } = await readModelConfig("smollm2-135m");
  const arch = architectureFor(config);
  return { model: { config, arch, params: initParams(arch, 0), path: "smollm2-135m (random)", format: "hf-dir" }, tokenizer: gpt2TokenizerOf(config.vocab_size) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const { model, tokenizer } = await benchModel();
const eos = tokenizer.eosTokenId ?? 2;
const PROMPTS = ["Once upon a time, there was a little girl named Lily who", "The dog ran to the park and saw a big", "One day, Tom found a shiny box under his bed. He", "The sun was hot, so the children went to the", "Mia had a red ball. She liked to play with it", "There was a small bird in a tree. The bird", "Ben wanted to build a tall tower with his blocks, but", "In the morning, the cat woke up and looked for"];
const reward = new ModuleRewardSource("share-of-e", (_p, cs) => cs.map((c) => (c.length ? [...c].filter((ch) => ch === "e").length / c.length : 0)));
const fields = { ...peftDefaults, use_peft: true, lora_target_modules: ["all-linear"], lora_dropout: 0 };
const config = { ...defaultPpoRunConfig, batch_size: Number(values.batch), response_length: Number(values["response-length"]), num_ppo_epochs: Number(values.epochs), ptx_coef: 0, use_peft: true };

function trainer(engine: "jax-js" | "llama.cpp", loraSync?: LoraSync): PpoTrainer {
  const policy = policyModels(model, fields, { seed: 0, dropout: false });
  const value = valueAdapterOn(model, fields, { seed: 0, padTokenId: 0 });
  const models = { ...policy, policy: policy.fresh(), valueConfig: value.valueConfig, valueArch: value.valueArch, valueAdapter: value.valueAdapter, value: value.fresh() };
  return new PpoTrainer({ config: { ...config, rollout_engine: engine }, models, tokenizer, prompts: PROMPTS, reward, eosIds: [eos], engineOptions: { threads: 1, ...(loraSync ? { loraSync } : {}) } });
}

if (values["sync-only"]) {
  const policy = policyModels(model, fields, { seed: 0, dropout: false });
  const params = { ...model.params, ...policy.fresh() };
  const prompt = [tokenizer.encode(PROMPTS[0]!)];
  console.log(`weight sync per step, ${values.model} with LoRA (r ${fields.lora_r}, all-linear): a llama.cpp rollout of 1 new token; median of ${steps} after the first`);
  console.log("| sync | first call s | later calls s |");
  console.log("| --- | --- | --- |");
  for (const loraSync of syncs) {
    const engine = createRolloutEngine("llama.cpp", policy.arch, { threads: 1, loraSync }, policy.adapter);
    const seconds: number[] = [];
    for (let i = 0; i <= steps; i++) {
      const started = performance.now();
      await engine.generate(params, prompt, { temperature: 1, maxNewTokens: 1, eosTokenIds: [eos] }, tokenizer);
      seconds.push((performance.now() - started) / 1000);
    }
    console.log(`| ${loraSync} | ${seconds[0]!.toFixed(2)} | ${median(seconds.slice(1)).toFixed(2)} |`);
    await engine.dispose();
  }
  process.exit(0);
}

const variants = [{ name: "jax-js", trainer: trainer("jax-js") }, ...syncs.map((s) => ({ name: `llama.cpp (${s} sync)`, trainer: trainer("llama.cpp", s) }))];
const times = new Map<string, PhaseSeconds[]>(variants.map((v) => [v.name, []]));
const tokens = new Map<string, number[]>(variants.map((v) => [v.name, []]));
for (let round = 0; round <= steps; round++) {
  for (const v of variants) {
    const report = await v.trainer.step();
    process.stderr.write(`round ${round} ${v.name}: ${JSON.stringify(report.phaseSeconds)}\n`);
    if (round === 0) continue; // compiles
    times.get(v.name)!.push(report.phaseSeconds!);
    tokens.get(v.name)!.push(report.generatedTokens);
  }
}

const phase = (name: string, key: keyof PhaseSeconds | "total") => median(times.get(name)!.map((t) => (key === "total" ? t.generation + t.scoring + t.update : t[key])));
console.log(`PPO iteration, ${values.model} with LoRA (r ${fields.lora_r}, all-linear), batch ${config.batch_size}, response_length ${config.response_length}, ${config.num_ppo_epochs} epochs; jax-js ${kernelThreadCount()} thread(s), llama.cpp 1; median of ${steps} alternated steps`);
console.log("| rollouts | generation s | scoring s | update s | iteration s | speed-up | tokens generated |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
const base = phase("jax-js", "total");
for (const v of variants) {
  const total = phase(v.name, "total");
  console.log(`| ${v.name} | ${phase(v.name, "generation").toFixed(2)} | ${phase(v.name, "scoring").toFixed(2)} | ${phase(v.name, "update").toFixed(2)} | ${total.toFixed(2)} | ${(base / total).toFixed(2)}× | ${median(tokens.get(v.name)!)} |`);
  await v.trainer.dispose();
}
release(model.params);
process.exit(0);
