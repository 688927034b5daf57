// Evaluation: a policy identical to its reference samples the same completions (win rate ½, KL 0);
// a sharpened policy's sampled KL estimate matches the exact KL, enumerated over a one-token
// vocabulary; the win rate counts ties as ½.
import { test } from "node:test";
import assert from "node:assert/strict";
import { initEngine } from "../engine/runtime.ts";
import { compile, toHost } from "../engine/arrays.ts";
import { copyParams, initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { responseLogprobs } from "./scoring.ts";
import { packSequences, toDevice, type DeviceSequences } from "./sequences.ts";
import { defaultEvalSettings, evaluatePolicy, winRate } from "./evaluate.ts";
import { letters, shareOfE, tinyArch } from "./test-helpers.ts";

const arch = tinyArch;

test("win rate: wins 1, ties ½, losses 0", () => {
  assert.equal(winRate([1, 0, 0.5, 2], [0, 0, 1, 2]), (1 + 0.5 + 0 + 0.5) / 4);
  assert.throws(() => winRate([1], []), /equally long/);
});

test("a policy equal to its reference: same samples, same reward, win rate ½, KL 0", async () => {
  await initEngine();
  const params = initParams(arch, 5);
  const { report, samples } = await evaluatePolicy({
    policy: { arch, params },
    reference: { arch, params: copyParams(params) },
    tokenizer: letters,
    prompts: ["ab", "c", "dd", "e", "f"],
    reward: shareOfE,
    eosIds: [2],
    settings: { ...defaultEvalSettings, max_new_tokens: 6, batch_size: 4, num_samples: 2 },
  });
  assert.equal(samples.length, 10);
  assert.ok(samples.every((s) => s.completion === s.reference_completion));
  assert.equal(report.reward, report.reference_reward);
  assert.equal(report.win_rate, 0.5);
  assert.equal(report.kl, 0);
  assert.equal(report.length, report.reference_length);
  assert.equal(report.num_prompts, 5);
});

test("the sampled KL estimate matches the exact KL of a one-token completion", async () => {
  await initEngine();
  const reference = initParams(arch, 7);
  const policy = copyParams(reference);
  // A sharper head: the policy's next-token distribution moves far from the reference's.
  policy["lm_head.weight"] = policy["lm_head.weight"]!.mul(25);
  const prompt = letters.encode("ab", { addSpecialTokens: true });
  const vocab = Array.from({ length: arch.vocabSize }, (_, v) => v);
  // Exact KL over the first token: every token is a possible one-token response (EOS included).
  const logprobs = compile((p: Params, s: DeviceSequences) => responseLogprobs(arch, p, s, prompt.length, 1).logprobs);
  const packed = toDevice(packSequences(vocab.map(() => prompt), vocab.map((v) => [v]), 2, prompt.length));
  const [lp, refLp] = [await toHost(logprobs(policy, packed)), await toHost(logprobs(reference, packed))];
  logprobs.dispose();
  const exact = vocab.reduce((s, v) => s + Math.exp(lp[v * 2]!) * (lp[v * 2]! - refLp[v * 2]!), 0);
  assert.ok(exact > 0.5, `the sharpened policy should be far from the reference (exact KL ${exact})`);

  const { report } = await evaluatePolicy({
    policy: { arch, params: policy },
    reference: { arch, params: reference },
    tokenizer: letters,
    prompts: new Array(16).fill("ab"),
    reward: shareOfE,
    eosIds: [2],
    settings: { ...defaultEvalSettings, max_new_tokens: 1, batch_size: 16, num_samples: 25 },
  });
  assert.ok(Math.abs(report.kl - exact) < 0.15 * Math.max(1, exact), `estimated KL ${report.kl} vs exact ${exact}`);
});
