// The local judge's verdict is the two answer tokens' log-probabilities under the project's model:
// checked against a direct full forward pass and a log-softmax of the last position's logits.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { spawnSync } from "node:child_process";
import { compile, fromHost, intsFromHost, release, toHost } from "../engine/arrays.ts";
import type { Array } from "../engine/runtime.ts";
import { logSoftmax } from "../generation/sampling.ts";
import { causalLmForward, fullBatch } from "../models/forward.ts";
import type { Params } from "../models/types.ts";
import { RLHF_BIN } from "../cli/test-helpers.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { LocalModel } from "./chat-model.ts";
import { renderJudgeMessages, type JudgeTemplate } from "./judge-template.ts";
import { continuationIds, logprobJudge } from "./judges.ts";
import { combineOrders } from "./verdict.ts";

const SHORT: JudgeTemplate = {
  name: "short",
  system_prompt: "Pick the better story.",
  prompt_template: "Story start: {question}\nA: {answer_a}\nB: {answer_b}\nBetter:",
  output_format: "[[A]]",
  source: "test",
};

/** log p(A) and log p(B) as the next token after the prompt, from one full forward pass. */
async function directLogprobs(local: LocalModel, prompt: string): Promise<{ a: number; b: number }> {
  const ids = local.tokenizer.encode(prompt);
  const [idA, idB] = ["A", "B"].map((x) => {
    const cont = continuationIds(local, ids, prompt, x);
    assert.equal(cont.length, 1, `"${x}" is one token after the prompt`);
    return cont[0]!;
  });
  const { arch, params } = local.loaded;
  const t = ids.length;
  const forward = compile((p: Params, i: Array, q: Array, m: Array) => causalLmForward(arch, p, fullBatch(i, q, m)));
  const inputs = [intsFromHost(ids, [1, t]), intsFromHost(ids.map((_, k) => k), [1, t]), fromHost(new Float32Array(t).fill(1), [1, t])] as const;
  const logits = await toHost(forward(params, ...inputs));
  release(inputs);
  forward.dispose();
  const v = arch.vocabSize;
  const last = logSoftmax(logits.subarray((t - 1) * v, t * v), 1);
  return { a: last[idA!]!, b: last[idB!]! };
}

for (const [name, path] of [["stories260K (llama2.c)", "llama2c/stories260K.bin"], ["tinystories-656k (HF)", "tinystories-656k"]] as const) {
  test(`${name}: the verdict is p(A) / (p(A) + p(B)) of the next token after the prompt and "[["`, async () => {
    const local = await LocalModel.load(sharedData(path));
    after(() => local.dispose());
    const judge = logprobJudge(local, "[[");
    const pairs = [["Lily saw a cat.", "The cat was happy and played with Lily.", "cat cat the the"], ["Tom had a ball.", "ball", "Tom threw the ball to his dog."]] as const;
    for (const [q, x, y] of pairs) {
      const messages = renderJudgeMessages(SHORT, q, x, y, null);
      const got = await judge.ask(messages);
      const { a, b } = await directLogprobs(local, local.promptText([{ role: "system", content: messages.system }, { role: "user", content: messages.user }]) + "[[");
      const expected = Math.exp(a) / (Math.exp(a) + Math.exp(b));
      assert.ok(Math.abs(got.p_a - expected) < 1e-4, `p_a ${got.p_a} vs direct ${expected}`);
      assert.equal(got.verdict, expected > 0.5 ? "A" : "B");
      assert.equal(got.rationale, null);
      // The other order, combined: the mean of the two orders' probabilities for the first response.
      const swapped = await judge.ask(renderJudgeMessages(SHORT, q, y, x, null));
      const combined = combineOrders(got, swapped);
      assert.ok(Math.abs(combined.p_first - (got.p_a + 1 - swapped.p_a) / 2) < 1e-12);
    }
  });
}

test("a judge prompt longer than the local model's context is a failed comparison, named in the summary", async () => {
  const dir = await tempDir();
  const data = join(dir, "d.jsonl");
  const template = join(dir, "t.jsonl");
  writeFileSync(template, JSON.stringify({ ...SHORT, source: undefined }) + "\n");
  writeFileSync(data, [
    JSON.stringify({ prompt: "Lily saw a cat.", chosen: "The cat was happy.", rejected: "cat cat" }),
    JSON.stringify({ prompt: "qzxj wvk ".repeat(120), chosen: "x", rejected: "y" }),
  ].join("\n") + "\n");
  const output = join(dir, "o.jsonl");
  const r = spawnSync(process.execPath, [RLHF_BIN, "judge", "--judge", sharedData("llama2c/stories260K.bin"), "--data", data, "--output", output, "--template", `${template}:short`], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const [record, ...rest] = readFileSync(output, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { confidence: number; order: { ab: string; ba: string } });
  assert.equal(rest.length, 0);
  assert.ok(record!.confidence >= 0.5 && record!.confidence <= 1);
  assert.match(record!.order.ab, /^[AB]$/);
  const summary = JSON.parse(readFileSync(join(dir, "o.summary.json"), "utf8")) as { failed: number; failures: { reason: string }[]; agreement: { pairs: number } };
  assert.equal(summary.failed, 1);
  assert.match(summary.failures[0]!.reason, /the judge prompt is \d+ tokens; .*stories260K\.bin's context is 512/);
  assert.equal(summary.agreement.pairs, 1);
});
