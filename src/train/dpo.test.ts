// DPO (its data reader: ../data/dpo-data.test.ts): completion-only sequence log-probs checked by
// hand, reference log-probs cached once (policy = reference gives ln 2 and zero rewards; after
// training the logged rewards are β(π − the cached starting log-probs)), TRL's smoke test for each
// loss_type, and `rlhf dpo` on stories260K (its kill -9 resume: kill-resume.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compile, fromHost, intsFromHost, release, toHost, toNumber } from "../engine/arrays.ts";
import { initEngine } from "../engine/runtime.ts";
import type { DpoLossType } from "../algorithms/dpo.ts";
import type { DpoExample } from "../data/dpo-data.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { architectureFor } from "../models/architecture.ts";
import { causalLmForward, fullBatch } from "../models/forward.ts";
import { loadModel } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import { defaultDPOConfig, type DPOConfig } from "./dpo-config.ts";
import { dpoBatch, dpoLoss, dpoTask, withReferenceLogps, type DpoBatch } from "./dpo.ts";
import { assertAllChanged, assertLogsDocumented, documentedMetrics, hostParams, tinyModel, VOCAB } from "./test-helpers.ts";
import { train } from "./trainer.ts";
import { headLossValue } from "./step.ts";

const quiet = { progress: false as const, log: () => {} };

function tiny(seed = 3) {
  const { config, params } = tinyModel(seed);
  return { modelConfig: config, arch: architectureFor(config), params };
}

/** Pairs whose chosen completion ends in a low token and rejected in a high one, after a shared random prompt. */
function pairs(n: number, seed = 1): DpoExample[] {
  let s = seed;
  const next = (k: number) => ((s = (s * 1103515245 + 12345) % 2147483648), s % k);
  return Array.from({ length: n }, () => {
    const prompt = [1, ...Array.from({ length: 2 + next(4) }, () => 3 + next(VOCAB - 3))];
    return { prompt, chosen: [3 + next(10), 2], rejected: [25 + next(10), 30, 2] };
  });
}

function config(over: Partial<DPOConfig> = {}): DPOConfig {
  return { ...defaultDPOConfig, learning_rate: 1e-2, per_device_train_batch_size: 4, per_device_eval_batch_size: 4, max_steps: 4, logging_steps: 1, eval_steps: 4, save_steps: 100, max_length: 32, lr_scheduler_type: "constant", ...over };
}

/** log p(token t | tokens < t) for every t ≥ 1 of one unpadded row, in float64 from the model's logits. */
async function tokenLogps(arch: ReturnType<typeof architectureFor>, params: Params, ids: number[]): Promise<number[]> {
  const t = ids.length;
  const forward = compile((p: Params, x: { ids: ReturnType<typeof fromHost>; pos: ReturnType<typeof fromHost>; attn: ReturnType<typeof fromHost> }) => causalLmForward(arch, p, fullBatch(x.ids, x.pos, x.attn)));
  const x = { ids: intsFromHost(ids, [1, t]), pos: intsFromHost(ids.map((_, i) => i), [1, t]), attn: fromHost(ids.map(() => 1), [1, t]) };
  const logits = await toHost(forward(params, x));
  release(x);
  forward.dispose();
  const v = arch.vocabSize;
  return ids.slice(1).map((target, i) => {
    const row = Array.from(logits.subarray(i * v, (i + 1) * v));
    const max = Math.max(...row);
    return row[target]! - max - Math.log(row.reduce((a, l) => a + Math.exp(l - max), 0));
  });
}

test("sequence log-probs count completion tokens only, padding changes nothing; IPO averages them", async () => {
  await initEngine();
  const { arch, params } = tiny();
  const short = { prompt: [1, 5, 6], chosen: [7, 8, 2], rejected: [9, 2] };
  const long = { prompt: [1, ...Array.from({ length: 20 }, (_, i) => 3 + i)], chosen: [4, 2], rejected: [5, 6, 7, 2] };
  const [withRefs] = await withReferenceLogps(arch, params, [short, long], config(), 0);
  for (const which of ["chosen", "rejected"] as const) {
    const all = await tokenLogps(arch, params, [...short.prompt, ...short[which]]);
    const completion = all.slice(short.prompt.length - 1).reduce((a, b) => a + b, 0);
    const got = which === "chosen" ? withRefs!.refChosen : withRefs!.refRejected;
    assert.ok(Math.abs(got - completion) < 1e-4, `${which}: ${got} vs hand-computed ${completion}`);
    // The prompt's own tokens would change the sum noticeably, so the check above can tell.
    assert.ok(Math.abs(all.reduce((a, b) => a + b, 0) - completion) > 0.5);
  }
  const [ipo] = await withReferenceLogps(arch, params, [short], config({ loss_type: "ipo" }), 0);
  assert.ok(Math.abs(ipo!.refChosen - withRefs!.refChosen / 3) < 1e-5 && Math.abs(ipo!.refRejected - withRefs!.refRejected / 2) < 1e-5);
  release(params);
});

test("with the policy equal to the reference the sigmoid loss is ln 2 and every implicit reward 0", async () => {
  await initEngine();
  const { arch, params } = tiny();
  const cfg = config();
  const data = await withReferenceLogps(arch, params, pairs(6), cfg, 0);
  for (const budget of [undefined, 7]) {
    // Blocks of at most 7 logits: the head runs one token at a time, as at a real vocabulary.
    const loss = compile((p: Params, b: DpoBatch) => headLossValue(dpoLoss(arch, cfg), p, b, budget));
    const { batch } = dpoBatch(data, 32, 0);
    const out = loss(params, batch);
    assert.ok(Math.abs((await toNumber(out.loss)) - Math.LN2) < 1e-5);
    for (const name of ["rewards/chosen", "rewards/rejected", "rewards/margins"]) assert.ok(Math.abs(await toNumber(out.metrics[name]!)) < 1e-5, name);
    // The reference's log-probs came from one block; other blocks sum in another order (1e-7 apart).
    const accuracy = await toNumber(out.metrics["rewards/accuracies"]!);
    if (budget === undefined) assert.equal(accuracy, 0, "equal rewards are not accurate");
    const logpsChosen = await toNumber(out.metrics["logps/chosen"]!);
    assert.ok(Math.abs(logpsChosen - data.reduce((a, p) => a + p.refChosen, 0) / data.length) < 1e-5);
    release([batch, out.metrics["logps/rejected"]]);
    loss.dispose();
  }
  release(params);
});

for (const [lossType, rpoAlpha] of [["sigmoid", null], ["ipo", null], ["hinge", null], ["robust", null], ["sigmoid", 1]] as [DpoLossType, number | null][]) {
  test(`smoke test, loss_type ${lossType}${rpoAlpha === null ? "" : `, rpo_alpha ${rpoAlpha}`}: finite losses, every parameter changed, exactly TRL's documented metrics, the reference stays cached`, async () => {
    await initEngine();
    const dir = await tempDir();
    const { modelConfig, arch, params } = tiny();
    const before = await hostParams(params);
    const cfg = config({ loss_type: lossType, label_smoothing: lossType === "robust" ? 0.1 : 0, rpo_alpha: rpoAlpha });
    const all = await withReferenceLogps(arch, params, pairs(20), cfg, 0);
    const data = { train: all.slice(0, 16), eval: all.slice(16) };
    const cached = data.eval.map((p) => [p.refChosen, p.refRejected]);
    const result = await train(dpoTask(arch, cfg, data, { modelConfig }, 0), params, { outputDir: dir, evaluateAtStart: true, ...quiet });
    assertAllChanged(before, await hostParams(result.params));
    const logs = result.state.log_history;
    assertLogsDocumented(logs, "DPO", rpoAlpha === null ? undefined : "Logged with rpo_alpha");
    const names = [...documentedMetrics("DPO"), ...(rpoAlpha === null ? [] : documentedMetrics("DPO", "Logged with rpo_alpha"))];
    for (const r of logs.filter((x) => "loss" in x)) {
      for (const k of ["loss", ...names, "grad_norm", "learning_rate", "epoch", "step"]) assert.ok(Number.isFinite(r[k]), `${k} in ${JSON.stringify(r)}`);
    }
    const [start, end] = logs.filter((x) => "eval_loss" in x);
    for (const k of names) assert.ok(k.startsWith("logps") || k === "nll_loss" || Math.abs(start![`eval_${k}`]!) < 1e-5, `eval_${k} at step 0: ${start![`eval_${k}`]}`);
    // RPO's NLL is the chosen completions' token-mean −log π: at step 0, −Σ ref_c / Σ |chosen|.
    if (rpoAlpha !== null) {
      const nll = -data.eval.reduce((a, p) => a + p.refChosen, 0) / data.eval.reduce((a, p) => a + p.chosen.length, 0);
      assert.ok(Math.abs(start!.eval_nll_loss! - nll) < 1e-5 && Math.abs(start!.eval_loss! - Math.LN2 - rpoAlpha * nll) < 1e-5, JSON.stringify(start));
    }
    assert.equal(start!.step, 0);
    // The held-out rewards after training are β(π_trained − the cached starting log-probs).
    assert.deepEqual(data.eval.map((p) => [p.refChosen, p.refRejected]), cached);
    const now = await withReferenceLogps(arch, result.params, data.eval, cfg, 0);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const expected = mean(now.map((p, i) => cfg.beta * (p.refChosen - data.eval[i]!.refChosen)));
    assert.ok(Math.abs(end!["eval_rewards/chosen"]! - expected) < 1e-4, `${end!["eval_rewards/chosen"]} vs ${expected}`);
    assert.ok(Math.abs(expected) > 1e-3, "training moved the policy away from the reference");
    const dpoPart = end!.eval_loss! - (rpoAlpha ?? 0) * (end!.eval_nll_loss ?? 0);
    if (lossType === "sigmoid") assert.ok(end!["eval_rewards/margins"]! > 0 && dpoPart < Math.LN2, JSON.stringify(end));
    release(result.params);
  });
}

test("rlhf dpo on stories260K with --ref-model: exactly the documented metric names in metrics.jsonl, ln 2 at step 0, a model that reloads", async () => {
  await initEngine();
  const dir = await tempDir();
  const bin = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));
  const model = sharedData("llama2c/stories260K.bin");
  const data = join(dir, "pairs.jsonl");
  const animals = ["cat", "dog", "bird", "fish"];
  const records = animals.flatMap((a, i) => [
    { prompt: `Once upon a time, there was a ${a}.`, chosen: " It was happy.", rejected: " It was sad!" },
    { chosen: `The ${a} liked to play.`, rejected: `The ${a} liked to cry.` },
    { prompt: [{ role: "user", content: `Tell me about the ${a}.` }], chosen: [{ role: "assistant", content: "It is nice." }], rejected: [{ role: "assistant", content: "No." }] },
    { chosen: `Lily saw a ${animals[(i + 1) % 4]}.`, rejected: `Lily saw a ${animals[(i + 2) % 4]}!` },
  ]);
  writeFileSync(data, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const out = join(dir, "out");
  mkdirSync(out);
  const help = spawnSync(process.execPath, [bin, "dpo", "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0);
  for (const flag of ["--ref-model PATH", "--loss_type NAME", "--label_smoothing N", "--beta N"]) assert.ok(help.stdout.includes(flag), flag);

  const args = ["dpo", "--model", model, "--data", data, "--output", out, "--max-steps", "3", "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--eval_split_ratio", "0.25", "--logging_steps", "1", "--eval_steps", "3", "--max_length", "64", "--ref-model", model];
  const run = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /12 training pairs, 4 held out; loss_type sigmoid, beta 0.1/);
  // The reference (here named with --ref-model, the same file) equals the starting policy, so step 0 shows ln 2 and zero rewards.
  const lines = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  const trainLines = lines.filter((l) => "loss" in l);
  assert.equal(trainLines.length, 3);
  assertLogsDocumented(lines, "DPO");
  assert.ok(lines.every((l) => Object.values(l).every(Number.isFinite)), "every logged value is finite");
  const evals = lines.filter((l) => "eval_loss" in l);
  assert.deepEqual(evals.map((l) => l.step), [0, 3]);
  assert.ok(Math.abs(evals[0]!.eval_loss! - Math.LN2) < 1e-5 && Math.abs(evals[0]!["eval_rewards/margins"]!) < 1e-5, JSON.stringify(evals[0]));

  // --resume reads the reference log-probs back from the output directory instead of recomputing
  // them, but only while they still belong to this reference and data.
  const cachePath = join(out, "dpo_ref_logps.json");
  const cache = JSON.parse(readFileSync(cachePath, "utf8")) as { train: number[][]; eval: number[][] };
  assert.equal(cache.train.length, 12);
  assert.equal(cache.eval.length, 4);
  const resumeArgs = [...args, "--resume"];
  resumeArgs[resumeArgs.indexOf("--max-steps") + 1] = "4";
  const resumed = spawnSync(process.execPath, [bin, ...resumeArgs], { encoding: "utf8" });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /reference log-probs of 16 pairs read from .*dpo_ref_logps\.json/);
  writeFileSync(cachePath, JSON.stringify({ ...cache, fingerprint: "another reference" }));
  const stale = spawnSync(process.execPath, [bin, ...resumeArgs], { encoding: "utf8" });
  assert.equal(stale.status, 0, stale.stderr);
  assert.match(stale.stderr, /reference log-probs \(.*\), 16 pairs/);
  assert.doesNotMatch(stale.stderr, /read from/);

  const trained = await loadModel(out);
  const original = await loadModel(model);
  assert.deepEqual(trained.config.architectures, ["LlamaForCausalLM"]);
  assert.deepEqual(Object.keys(trained.params).sort(), Object.keys(original.params).sort());
  const [w1, w0] = [await toHost(trained.params["model.embed_tokens.weight"]!.ref), await toHost(original.params["model.embed_tokens.weight"]!.ref)];
  assert.ok(w1.some((x, i) => x !== w0[i]), "the weights did not change");
  release([trained.params, original.params]);
});
