// The llama.cpp rollout engine against the built-in generator on stories260K: the same greedy
// tokens, and at temperature 1 seeded, reproducible samples whose sampler log-probs match this
// project's own log-probs of the same tokens (the importance ratio a trainer would log is ~1); a
// LoRA policy's adapter synced on its own, or merged, samples what the policy does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fromHost, release } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { join } from "node:path";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { writeGgufAdapterFromTensors, writeGgufFromTensors } from "../models/gguf-export.ts";
import { paramsToTensors } from "../models/params.ts";
import { LlamaCppModel } from "./llama-cpp.ts";
import type { Architecture } from "../models/architecture.ts";
import { adapterShapes, resolveTargetModules, withAdapter, type LoraConfig } from "../models/lora.ts";
import type { Params } from "../models/types.ts";
import { loadModel, resolveTokenizer } from "../models/load.ts";
import { logitsOf } from "../models/test-helpers.ts";
import { Generator } from "./generate.ts";
import { createRolloutEngine } from "./rollout-engine.ts";
import { logSoftmax } from "./sampling.ts";

const PROMPTS = ["Once upon a time", "Lily and Tom went to the park", "The little dog was sad because"];

test("llama.cpp rollouts: greedy as the built-in generator; seeded samples reproducible, sampler log-probs ≈ this project's", async () => {
  const model = await loadModel(sharedData("llama2c/stories260K.bin"));
  const tokenizer = await resolveTokenizer(model);
  const prompts = PROMPTS.map((p) => tokenizer.encode(p));
  // An F32 cache, so the only difference left is the order of float32 sums (the default F16 cache: 1.5e-2 measured).
  const engine = createRolloutEngine("llama.cpp", model.arch, { kvCacheType: "F32" });
  const builtIn = new Generator(model.arch);
  const greedy = { temperature: 0, maxNewTokens: 32, eosTokenIds: [2] };
  const [ours, theirs] = [await builtIn.generate(model.params, prompts, greedy, tokenizer), await engine.generate(model.params, prompts, greedy, tokenizer)];
  assert.deepEqual(theirs.map((g) => g.completionIds), ours.map((g) => g.completionIds));
  assert.deepEqual(theirs.map((g) => g.text), ours.map((g) => g.text));

  const sampling = { temperature: 1, topK: 0, topP: 1, seed: 5, maxNewTokens: 32, eosTokenIds: [2] };
  const first = await engine.generate(model.params, prompts, sampling, tokenizer);
  const again = await engine.generate(model.params, prompts, sampling, tokenizer);
  assert.deepEqual(again.map((g) => g.completionIds), first.map((g) => g.completionIds));
  // The log-probs too, bit for bit (the sequences step through llama.cpp's batches in lockstep): a
  // resumed run's importance weights depend on them.
  assert.deepEqual(again.map((g) => g.logprobs), first.map((g) => g.logprobs));
  assert.notDeepEqual(first.map((g) => g.completionIds), ours.map((g) => g.completionIds), "temperature 1 sampled the greedy tokens for every prompt");
  let largest = 0;
  for (const g of first) {
    const ids = [...g.promptIds, ...g.completionIds];
    const logits = await logitsOf(model, ids);
    const v = model.arch.vocabSize;
    g.completionIds.forEach((token, k) => {
      const at = g.promptIds.length - 1 + k;
      const mine = logSoftmax(logits.subarray(at * v, (at + 1) * v), 1)[token]!;
      largest = Math.max(largest, Math.abs(mine - g.logprobs[k]!));
    });
  }
  // Measured 5e-6 over 96 tokens: llama.cpp's probability of the sampled token is the plain softmax at temperature 1.
  console.log(`largest |log-prob difference| of ${first.reduce((n, g) => n + g.completionIds.length, 0)} sampled tokens: ${largest.toExponential(2)}`);
  assert.ok(largest < 1e-4, `sampler log-probs differ from this project's by ${largest}`);

  await assert.rejects(engine.generate({ ...model.params, "x.lora_A.weight": model.params["model.norm.weight"]! }, prompts, greedy, tokenizer), /x\.lora_A\.weight is not one \(merge an adapter first\)/);
  builtIn.dispose();
  await engine.dispose();
});

/** A random nonzero adapter (B ≠ 0, so it changes what the model says) on `targets` of stories260K. */
function randomAdapterParams(arch: Architecture, lora: LoraConfig, seed: number): Params {
  const rng = new HostRng(seed);
  return Object.fromEntries(Object.entries(adapterShapes(arch, lora)).map(([name, shape]) => [name, fromHost(Float32Array.from({ length: shape[0]! * shape[1]! }, () => 0.2 * rng.normal()), shape)]));
}

test("llama.cpp rollouts of a LoRA policy: adapter sync (base once, adapter per call) and merged sync both give the built-in generator's greedy tokens, adapter after adapter", async () => {
  const model = await loadModel(sharedData("llama2c/stories260K.bin"));
  const tokenizer = await resolveTokenizer(model);
  const prompts = PROMPTS.map((p) => tokenizer.encode(p));
  const lora: LoraConfig = { task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: resolveTargetModules(model.arch, ["all-linear"]), modules_to_save: null, fan_in_fan_out: false, use_rslora: false, base_model_name_or_path: null };
  const arch = withAdapter(model.arch, lora);
  const greedy = { temperature: 0, maxNewTokens: 24, eosTokenIds: [2] };
  const builtIn = new Generator(arch);
  const engines = { adapter: createRolloutEngine("llama.cpp", arch, { kvCacheType: "F32", loraSync: "adapter" }, lora), merged: createRolloutEngine("llama.cpp", arch, { kvCacheType: "F32", loraSync: "merged" }, lora) };
  const seen: number[][][] = [];
  // Two adapters in turn through the same engines: the second must not be served from the first's file.
  for (const seed of [1, 2]) {
    const policy = { ...model.params, ...randomAdapterParams(model.arch, lora, seed) };
    const ours = (await builtIn.generate(policy, prompts, greedy, tokenizer)).map((g) => g.completionIds);
    for (const [sync, engine] of Object.entries(engines)) {
      assert.deepEqual((await engine.generate(policy, prompts, greedy, tokenizer)).map((g) => g.completionIds), ours, `${sync} sync, adapter ${seed}`);
    }
    seen.push(ours);
    release(Object.fromEntries(Object.entries(policy).filter(([name]) => name.includes(".lora_"))));
  }
  assert.notDeepEqual(seen[1], seen[0], "the two adapters say the same thing: the swap is not tested");
  await assert.rejects(engines.adapter.generate(model.params, prompts, greedy, tokenizer), /given a LoRA policy without model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight/);
  builtIn.dispose();
  for (const engine of Object.values(engines)) await engine.dispose();
  release(model.params);
});

test("an adapter applied to a loaded model is unloaded with its generator (node-llama-cpp would keep it until the model goes)", async () => {
  const model = await loadModel(sharedData("llama2c/stories260K.bin"));
  const tokenizer = await resolveTokenizer(model);
  const lora: LoraConfig = { task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ["q_proj", "v_proj"], modules_to_save: null, fan_in_fan_out: false, use_rslora: false, base_model_name_or_path: null };
  const dir = await tempDir();
  const [base, adapterFile] = [join(dir, "base.gguf"), join(dir, "adapter.gguf")];
  await writeGgufFromTensors(base, model.config, await paramsToTensors(model.params), tokenizer, { type: "f32", name: "base", source: "base", quiet: true });
  const adapter = randomAdapterParams(model.arch, lora, 3);
  await writeGgufAdapterFromTensors(adapterFile, model.config, lora, await paramsToTensors(adapter), { type: "f32", name: "adapter", source: "adapter", quiet: true });
  const loaded = await LlamaCppModel.load(base);
  const generator = await loaded.generator({ contextSize: 16, threads: 1, lora: adapterFile });
  assert.equal(loaded.loadedAdapters, 1);
  await generator.dispose();
  assert.equal(loaded.loadedAdapters, 0);
  await loaded.dispose();
  release([adapter, model.params]);
});
