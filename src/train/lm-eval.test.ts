// The held-out LM loss against the numpy float64 reference of tinystories-656k: its greedy
// continuation's log-probs (test/fixtures/tinystories-656k-greedy.json), averaged per token, over
// rows of different lengths in one padded batch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { sharedData } from "../io/test-helpers.ts";
import { disposeModel, loadModel } from "../models/load.ts";
import { languageModelLoss } from "./lm-eval.ts";

const reference = JSON.parse(readFileSync(new URL("../../test/fixtures/tinystories-656k-greedy.json", import.meta.url), "utf8")) as { prompt_ids: number[]; completion_ids: number[]; logprobs: number[] };

test("languageModelLoss: mean NLL per token of BOS + the greedy story, and of a 20-token prefix beside it, as the numpy reference's log-probs give", async () => {
  const model = await loadModel(sharedData("tinystories-656k"));
  const ids = [...reference.prompt_ids, ...reference.completion_ids];
  const row = (n: number) => ({ segments: [{ ids: ids.slice(0, n + 1), lossMask: ids.slice(0, n + 1).map((_, t) => (t === 0 ? 0 : 1)) }] });
  const sum = (n: number) => reference.logprobs.slice(0, n).reduce((a, x) => a + x, 0);
  const whole = await languageModelLoss(model.arch, model.params, [row(64)], { padId: 0, batchSize: 4, maxLength: 512 });
  assert.equal(whole.tokens, 64);
  assert.ok(Math.abs(whole.loss + sum(64) / 64) < 1e-5, `${whole.loss} vs ${-sum(64) / 64}`);
  // Two rows padded together, and two batches of one: the same per-token mean.
  for (const batchSize of [2, 1]) {
    const both = await languageModelLoss(model.arch, model.params, [row(64), row(20)], { padId: 0, batchSize, maxLength: 512 });
    assert.equal(both.tokens, 84);
    assert.ok(Math.abs(both.loss + (sum(64) + sum(20)) / 84) < 1e-5, `batch ${batchSize}: ${both.loss} vs ${-(sum(64) + sum(20)) / 84}`);
  }
  disposeModel(model);
});
