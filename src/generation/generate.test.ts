// Generation against llama2.c's run.c (greedy, token for token), KV-cache consistency with a full
// forward pass, left-padded batching, reproducible sampling, and padded vocabularies.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { compile, fromHost, intsFromHost, release, toHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";
import { loadModel, resolveTokenizer, type LoadedModel } from "../models/load.ts";
import { causalLmForward, fullBatch } from "../models/forward.ts";
import type { Params } from "../models/types.ts";
import { architectureFor, type Architecture } from "../models/architecture.ts";
import { parseConfig } from "../models/config.ts";
import { initParams } from "../models/params.ts";
import { sharedData } from "../io/test-helpers.ts";
import { loadTokenizer } from "../tokenizers/load.ts";
import { Generator } from "./generate.ts";
import { logSoftmax } from "./sampling.ts";

interface GreedyCase { prompt: string; prompt_ids: number[]; completion_ids: number[] }
const fixture = JSON.parse(readFileSync(new URL("../../test/fixtures/stories260K-greedy.json", import.meta.url), "utf8")) as { cases: GreedyCase[] };
const PUBLISHED =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high";

let cached: LoadedModel | null = null;
async function stories(): Promise<LoadedModel> {
  cached ??= await loadModel(sharedData("llama2c/stories260K.bin"));
  return cached;
}

test("greedy stories260K from BOS reproduces llama2.c's published output", async () => {
  const model = await stories();
  const tok = await resolveTokenizer(model);
  const [g] = await new Generator(model.arch).generate(model.params, [[1]], { temperature: 0, maxNewTokens: 60, eosTokenIds: [2] }, tok);
  const text = tok.decode([1, ...g!.completionIds], { skipSpecialTokens: true });
  assert.ok(text.startsWith(PUBLISHED.slice(0, 150)), text);
});

test("greedy continuations match run.c token for token, batched with left padding", async () => {
  const model = await stories();
  const tok = await resolveTokenizer(model);
  const n = 40;
  for (const c of fixture.cases) assert.deepEqual(tok.encode(c.prompt), c.prompt_ids, `prompt ids for "${c.prompt}"`);
  const out = await new Generator(model.arch).generate(model.params, fixture.cases.map((c) => c.prompt_ids), { temperature: 0, maxNewTokens: n });
  fixture.cases.forEach((c, i) => assert.deepEqual(out[i]!.completionIds, c.completion_ids.slice(0, n), `case "${c.prompt}"`));
});

/** Each cached log-prob of a sampled continuation against a full forward pass over the sequence. */
async function assertCacheMatchesFullPass(arch: Architecture, params: Params, prompt: number[], seed: number): Promise<void> {
  const [g] = await new Generator(arch).generate(params, [prompt], { temperature: 1, maxNewTokens: 12, seed });
  const ids = [...g!.promptIds, ...g!.completionIds];
  const t = ids.length;
  const forward = compile((p: Params, i: Array, q: Array, m: Array) => causalLmForward(arch, p, fullBatch(i, q, m)));
  const inputs = [intsFromHost(ids, [1, t]), intsFromHost(ids.map((_, k) => k), [1, t]), fromHost(new Float32Array(t).fill(1), [1, t])] as const;
  const logits = await toHost(forward(params, ...inputs));
  release(inputs);
  const v = arch.vocabSize;
  assert.equal(g!.completionIds.length, 12);
  g!.completionIds.forEach((id, k) => {
    const at = g!.promptIds.length - 1 + k; // the position that predicts completion token k
    const expected = logSoftmax(logits.subarray(at * v, (at + 1) * v), 1)[id]!;
    assert.ok(Math.abs(expected - g!.logprobs[k]!) < 1e-4, `token ${k}: cached ${g!.logprobs[k]} vs full ${expected}`);
  });
}

test("KV-cached log-probs equal a full forward pass over the generated sequence", async () => {
  const model = await stories();
  await assertCacheMatchesFullPass(model.arch, model.params, [1, 291, 376], 3);
});

test("GPT-2 decoding with its Conv1D weights transposed matches a full forward pass", async () => {
  // Weights scaled up from GPT-2's N(0, 0.02) so the next-token distributions are far from uniform
  // and a projection applied the wrong way round would move the log-probs by far more than 1e-4.
  const config = parseConfig(
    { model_type: "gpt2", vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4, n_inner: 64, tie_word_embeddings: false },
    "tiny gpt2",
  );
  const arch = architectureFor(config);
  assert.ok(arch.transposedForDecoding.includes("transformer.h.0.attn.c_proj.weight"));
  const init = initParams(arch, 5);
  const params = Object.fromEntries(Object.entries(init).map(([n, w]) => [n, n.endsWith(".weight") && w.ndim === 2 ? w.mul(8) : w]));
  await assertCacheMatchesFullPass(arch, params, [3, 17, 9, 40], 11);
  // The caller's weights are untouched and still usable (the transposed copies were the generator's).
  assert.deepEqual(params["transformer.h.0.mlp.c_fc.weight"]!.shape, [32, 64]);
  release(params);
});

test("sampling is reproducible for a seed and differs across seeds", async () => {
  const model = await stories();
  const gen = new Generator(model.arch);
  const run = (seed: number) => gen.generate(model.params, [[1], [1, 291]], { temperature: 1, topK: 40, topP: 0.95, maxNewTokens: 16, seed });
  const [a, b, c] = [await run(7), await run(7), await run(8)];
  assert.deepEqual(a.map((g) => g.completionIds), b.map((g) => g.completionIds));
  assert.notDeepEqual(a.map((g) => g.completionIds), c.map((g) => g.completionIds));
});

test("a prompt longer than the context is refused with a clear message", async () => {
  const model = await stories();
  const long = new Array(model.arch.maxPositions).fill(5);
  await assert.rejects(new Generator(model.arch).generate(model.params, [long], { maxNewTokens: 1 }), /exceeds the model's context of 512 tokens/);
});

test("a vocabulary padded past the tokenizer's (as Qwen2.5's): only ids the tokenizer can decode are sampled", async () => {
  const tok = await loadTokenizer(sharedData("llama2c/tok512.bin"));
  const config = parseConfig(
    { model_type: "qwen2", vocab_size: 600, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64, tie_word_embeddings: true },
    "padded qwen2",
  );
  const arch = architectureFor(config);
  const init = initParams(arch, 2);
  // A zero final norm makes every logit 0: unrestricted, 88 of the 600 ids would come up about every seventh token.
  const params = { ...init, "model.norm.weight": init["model.norm.weight"]!.mul(0) };
  const out = await new Generator(arch).generate(params, [[1], [1, 291], [1, 376], [1]], { temperature: 1, maxNewTokens: 40, seed: 9 }, tok);
  const ids = out.flatMap((g) => g.completionIds);
  assert.equal(ids.length, 160);
  assert.ok(ids.every((id) => id < tok.vocabSize), `sampled ${ids.filter((id) => id >= tok.vocabSize)}`);
  for (const g of out) for (const lp of g.logprobs) assert.ok(Math.abs(lp + Math.log(tok.vocabSize)) < 1e-5, `log-prob ${lp} over the tokenizer's ${tok.vocabSize} ids`);
  assert.equal(typeof out[0]!.text, "string");
  release(params);
});
