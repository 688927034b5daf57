// The llama.cpp rollout engine against the built-in generator on stories260K: the same greedy
// tokens, and at temperature 1 seeded, reproducible samples whose sampler log-probs match this
// project's own log-probs of the same tokens (the importance ratio a trainer would log is ~1).
import { test } from "node:test";
import assert from "node:assert/strict";
import { sharedData } from "../io/test-helpers.ts";
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
