// Packed prompt+response scoring agrees with what generation reported, a reward model reads its
// score at each row's last real token regardless of padding, and reward sources combine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { compile, release, toHost } from "../engine/arrays.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { loadModel } from "../models/load.ts";
import { initParams } from "../models/params.ts";
import { architectureFor } from "../models/architecture.ts";
import { parseConfig } from "../models/config.ts";
import type { Params } from "../models/types.ts";
import { Generator } from "../generation/generate.ts";
import { lastTokenScore, responseLogprobs } from "./scoring.ts";
import { packSequences, toDevice, type DeviceSequences } from "./sequences.ts";
import { loadRewardSource, ModuleRewardSource, RewardModelSource, WeightedRewardSource } from "./reward-source.ts";
import { RewardScorer } from "../train/reward.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

test("response log-probs of packed sequences equal the log-probs reported while sampling", async () => {
  const model = await loadModel(sharedData("llama2c/stories260K.bin"));
  const prompts = [[1, 291, 376, 400], [1, 403]];
  const gens = await new Generator(model.arch).generate(model.params, prompts, { temperature: 0.7, maxNewTokens: 10, seed: 5 });
  const packed = packSequences(prompts, gens.map((g) => g.completionIds), 12);
  const device = toDevice(packed);
  const f = compile((p: Params, s: DeviceSequences) => responseLogprobs(model.arch, p, s, packed.promptLength, 0.7).logprobs);
  const logprobs = await toHost(f(model.params, device));
  gens.forEach((g, r) => {
    g.logprobs.forEach((lp, i) => assert.ok(Math.abs(logprobs[r * 12 + i]! - lp) < 1e-4, `row ${r} token ${i}: ${logprobs[r * 12 + i]} vs ${lp}`));
  });
  release(device);
});

test("the reward score is read at the last real token, whatever the padding", async () => {
  const config = parseConfig(
    { model_type: "llama", architectures: ["LlamaForSequenceClassification"], num_labels: 1, vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 32, pad_token_id: 0 },
    "tiny rm",
  );
  const arch = architectureFor(config);
  const params = initParams(arch, 4);
  const f = compile((p: Params, s: DeviceSequences) => lastTokenScore(arch, p, s));
  const alone = packSequences([[1, 5, 6]], [[7, 8]]);
  const padded = packSequences([[1, 5, 6], [1, 9, 9, 9, 9, 9]], [[7, 8], [3]], 6);
  const [a, b] = [toDevice(alone), toDevice(padded)];
  const [sa, sb] = [await toHost(f(params, a)), await toHost(f(params, b))];
  assert.ok(Math.abs(sa[0]! - sb[0]!) < 1e-5, `${sa[0]} vs ${sb[0]}`);
  release([a, b, params]);
});

test("module reward sources are validated and weighted sums add up", async () => {
  const dir = await tempDir();
  const path = join(dir, "length.mjs");
  await writeFile(path, "export function reward(prompts, completions) { return completions.map((c) => c.length); }\n");
  const source = await loadRewardSource([path]);
  assert.deepEqual(await source.score(["a", "b"], ["xyz", ""]), [3, 0]);
  const bad = new ModuleRewardSource("bad", () => [1]);
  await assert.rejects(bad.score(["a", "b"], ["x", "y"]), /must return 2 finite numbers/);
  const sum = new WeightedRewardSource([{ source, weight: 2 }, { source: new ModuleRewardSource("one", (_p, c) => c.map(() => 1)), weight: -1 }]);
  assert.deepEqual(await sum.score(["a"], ["abcd"]), [7]);
  await assert.rejects(loadRewardSource([join(dir, "missing.mjs")]), /not found/);
});

test("a reward model scores a completion as rm train and rm score render it: prompt, completion, EOS", async () => {
  const config = parseConfig(
    { model_type: "llama", architectures: ["LlamaForSequenceClassification"], num_labels: 1, vocab_size: 12, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 32, pad_token_id: 0, eos_token_id: 2 },
    "tiny rm",
  );
  const arch = architectureFor(config);
  const params = initParams(arch, 7);
  // Letters a..i are ids 3..11; BOS 1, EOS 2.
  const letters: Tokenizer = {
    vocabSize: 12, bosTokenId: 1, eosTokenId: 2, padTokenId: 0, chatTemplate: null, modelMaxLength: null,
    encode: (text, o) => [...(o?.addSpecialTokens === false ? [] : [1]), ...[...text].map((ch) => ch.charCodeAt(0) - 94)],
    decode: (ids) => ids.filter((i) => i >= 3).map((i) => String.fromCharCode(i + 94)).join(""),
    save: async () => {},
  };
  const source = new RewardModelSource({ config, arch, params, path: "tiny-rm", format: "hf-dir" }, letters);
  const scorer = new RewardScorer(arch, 0, 32);
  const [withEos, withoutEos] = [await scorer.score(params, [[1, 3, 4, 5, 6, 2], [1, 3, 4, 5, 6]]), await source.score(["ab"], ["cd"])];
  assert.ok(Math.abs(withoutEos[0]! - withEos[0]!) < 1e-5, `source ${withoutEos[0]} vs rm score's rendering ${withEos[0]}`);
  assert.ok(Math.abs(withEos[0]! - withEos[1]!) > 1e-4, "the fixture cannot tell EOS from its absence");
  scorer.dispose();
  source.dispose();
});
