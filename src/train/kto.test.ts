// KTO on the shared loop (its loss: ../algorithms/kto.test.ts, its data: ../data/kto-data.test.ts):
// the mismatched completions TRL's way and fixed by the seed, reference log-probs of completion
// tokens only (the same as DPO's for the same rows), policy = reference gives ½ and zero rewards,
// TRL's smoke test for each loss_type, stories260K on rt-polarity learning the labels, and `rlhf
// kto` on the command line (its kill -9 resume: kill-resume.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compile, release, toNumber } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { initEngine } from "../engine/runtime.ts";
import type { KtoLossType } from "../algorithms/kto.ts";
import { readKtoData, type KtoExample } from "../data/kto-data.ts";
import { readRtPolarity } from "../data/rt-polarity.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { architectureFor } from "../models/architecture.ts";
import { loadModel, resolveTokenizer } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import { withReferenceLogps as dpoReferenceLogps } from "./dpo.ts";
import { defaultKTOTrainingConfig, type KTOTrainingConfig } from "./kto-config.ts";
import { fitKtoExamples, ktoBatch, ktoHeadLoss, ktoMeans, ktoTask, ktoWeightAdvice, withKlCompletions, withKlSplits, withReferenceLogps, type KtoBatch, type KtoItem } from "./kto.ts";
import { headLossValue } from "./step.ts";
import { assertAllChanged, assertLogsDocumented, documentedMetrics, hostParams, tinyModel, VOCAB } from "./test-helpers.ts";
import { train } from "./trainer.ts";

const quiet = { progress: false as const, log: () => {} };
const bin = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));

function tiny(seed = 3) {
  const { config, params } = tinyModel(seed);
  return { modelConfig: config, arch: architectureFor(config), params };
}

/** Prompts of random tokens; desirable completions end in a low token, undesirable ones in high tokens. */
function examples(n: number, seed = 1): KtoExample[] {
  const rng = new HostRng(seed);
  return Array.from({ length: n }, (_, i) => {
    const prompt = [1, ...Array.from({ length: 2 + rng.int(4) }, () => 3 + rng.int(VOCAB - 3))];
    const label = i % 2 === 0;
    return { prompt, completion: label ? [3 + rng.int(10), 2] : [25 + rng.int(10), 30, 2], label };
  });
}

function config(over: Partial<KTOTrainingConfig> = {}): KTOTrainingConfig {
  return { ...defaultKTOTrainingConfig, learning_rate: 1e-2, per_device_train_batch_size: 4, per_device_eval_batch_size: 4, max_steps: 4, logging_steps: 1, eval_steps: 4, save_steps: 100, max_length: 32, lr_scheduler_type: "constant", ...over };
}

async function withRefs(arch: ReturnType<typeof architectureFor>, params: Params, data: { train: KtoExample[]; eval: KtoExample[] }, cfg: KTOTrainingConfig) {
  const paired = withKlSplits(data, cfg, arch);
  return { train: await withReferenceLogps(arch, params, paired.train, cfg, 0), eval: await withReferenceLogps(arch, params, paired.eval, cfg, 0) };
}

test("mismatched completions: each batch of the first epoch takes its own completions shifted by one, fixed by the seed, cut to fit", () => {
  const { arch } = tiny();
  const cfg = config({ per_device_train_batch_size: 4, per_device_eval_batch_size: 3, seed: 7 });
  const data = { train: examples(10), eval: examples(7, 2) };
  const paired = withKlSplits(data, cfg, arch);
  assert.deepEqual(withKlSplits(data, cfg, arch), paired, "deterministic");
  // train() draws its first epoch as HostRng(seed).shuffle; batch k is order[4k .. 4k+4).
  const order = new HostRng(7).shuffle(Array.from({ length: 10 }, (_, i) => i));
  for (const batch of [order.slice(0, 4), order.slice(4, 8)]) {
    batch.forEach((i, j) => assert.deepEqual(paired.train[i]!.klCompletion, data.train[batch[(j + 3) % 4]!]!.completion));
  }
  // Held out: file order in evaluation batches of 3; the last batch of one joins the one before it.
  const evalGroups = [[0, 1, 2], [3, 4, 5, 6]];
  for (const g of evalGroups) g.forEach((i, j) => assert.deepEqual(paired.eval[i]!.klCompletion, data.eval[g[(j + g.length - 1) % g.length]!]!.completion));
  assert.ok(paired.train.every((e, i) => e.klCompletion !== data.train[i]!.completion && e.prompt === data.train[i]!.prompt && e.label === data.train[i]!.label));
  // A mismatched completion is cut to what its own prompt leaves of max_length.
  const long = [{ prompt: [1, 5, 6, 7, 8], completion: [9, 2], label: true }, { prompt: [1], completion: [10, 11, 12, 13, 2], label: false }];
  const cut = withKlCompletions(long, [0, 1], 2, config({ max_length: 8 }), arch);
  assert.deepEqual(cut.map((e) => e.klCompletion), [[10, 11, 12], [9, 2]]);
  assert.ok(withKlSplits(data, config({ loss_type: "apo_zero_unpaired" }), arch).train.every((e) => e.klCompletion === null));
});

test("reference log-probs score completion tokens only, as DPO's do; with the policy as reference the loss is ½, kl 0, every reward 0", async () => {
  await initEngine();
  const { arch, params } = tiny();
  const cfg = config();
  const data = await withRefs(arch, params, { train: examples(6), eval: [] }, cfg);
  // The same rows as DPO pairs (completion as chosen, KL completion as rejected) give the same sums.
  const asPairs = await dpoReferenceLogps(arch, params, data.train.map((e) => ({ prompt: e.prompt, chosen: e.completion, rejected: e.klCompletion! })), { ...cfg, beta: 0.1, loss_type: "sigmoid", label_smoothing: 0, rpo_alpha: null }, 0);
  data.train.forEach((e, i) => assert.ok(Math.abs(e.refLogp - asPairs[i]!.refChosen) < 1e-5 && Math.abs(e.refKlLogp! - asPairs[i]!.refRejected) < 1e-5, `${i}`));
  for (const budget of [undefined, 7]) {
    // Blocks of at most 7 logits: the head runs one token at a time, as at a real vocabulary.
    const loss = compile((p: Params, b: KtoBatch) => headLossValue(ktoHeadLoss(arch, cfg), p, b, budget));
    const { batch } = ktoBatch(data.train, 32, 0);
    const out = loss(params, batch);
    assert.ok(Math.abs((await toNumber(out.loss)) - 0.5) < 1e-6);
    for (const name of ["kl", "rewards/chosen_sum", "rewards/rejected_sum"]) assert.ok(Math.abs(await toNumber(out.metrics[name]!)) < 1e-5, name);
    assert.deepEqual([await toNumber(out.metrics["count/chosen"]!), await toNumber(out.metrics["count/rejected"]!)], [3, 3]);
    const logpsChosen = await toNumber(out.metrics["logps/chosen_sum"]!);
    assert.ok(Math.abs(logpsChosen - data.train.filter((e) => e.label).reduce((a, e) => a + e.refLogp, 0)) < 1e-4);
    release([out.metrics["logps/rejected_sum"]]);
    loss.dispose();
  }
  release(params);
});

for (const lossType of ["kto", "apo_zero_unpaired"] as KtoLossType[]) {
  test(`smoke test, loss_type ${lossType}: finite losses, every parameter changed, TRL's metrics, rewards β(π − the cached reference)`, async () => {
    await initEngine();
    const dir = await tempDir();
    const { modelConfig, arch, params } = tiny();
    const before = await hostParams(params);
    const cfg = config({ loss_type: lossType });
    const all = examples(24);
    const data = await withRefs(arch, params, { train: all.slice(0, 16), eval: all.slice(16) }, cfg);
    const task = ktoTask(arch, cfg, data, { modelConfig }, 0);
    const batches: KtoItem[][] = [];
    const makeBatch = task.makeBatch;
    task.makeBatch = (items) => (batches.push(items), makeBatch(items));
    const result = await train(task, params, { outputDir: dir, evaluateAtStart: true, ...quiet });
    // 16 training examples, 4 per step: in the first epoch every batch's KL completions are its own completions, on other prompts.
    const firstEpoch = batches.filter((b) => data.train.includes(b[0]!)).slice(0, 4);
    assert.equal(firstEpoch.length, 4);
    const key = (ids: number[] | null) => ids!.join(",");
    if (lossType === "kto") for (const b of firstEpoch) assert.deepEqual(b.map((e) => key(e.klCompletion)).sort(), b.map((e) => key(e.completion)).sort());
    assertAllChanged(before, await hostParams(result.params));
    const names = documentedMetrics("KTO");
    assert.deepEqual(names, ["kl", "rewards/chosen_sum", "rewards/rejected_sum", "logps/chosen_sum", "logps/rejected_sum", "count/chosen", "count/rejected"]);
    const logs = result.state.log_history;
    assertLogsDocumented(logs, "KTO");
    for (const r of logs.filter((x) => "loss" in x)) {
      for (const k of ["loss", ...names, "grad_norm", "learning_rate", "epoch", "step"]) assert.ok(Number.isFinite(r[k]), `${k} in ${JSON.stringify(r)}`);
      assert.equal(r["count/chosen"]! + r["count/rejected"]!, 4);
    }
    const [start, end] = logs.filter((x) => "eval_loss" in x);
    assert.equal(start!.step, 0);
    assert.ok(Math.abs(start!.eval_loss! - 0.5) < 1e-6 && Math.abs(ktoMeans(start!, "eval_").margin) < 1e-5, JSON.stringify(start));
    // The held-out rewards after training are β(π_trained − the cached starting log-probs).
    const now = await withReferenceLogps(arch, result.params, data.eval, cfg, 0);
    const chosen = now.filter((e) => e.label).map((e, i) => cfg.beta * (e.refLogp - data.eval.filter((x) => x.label)[i]!.refLogp));
    assert.ok(Math.abs(end!["eval_rewards/chosen_sum"]! - chosen.reduce((a, b) => a + b, 0) / 2) < 1e-4, "two eval batches, each summing its own");
    const m = ktoMeans(end!, "eval_");
    assert.ok(m.margin > 0 && end!.eval_loss! < 0.5, JSON.stringify(end));
    if (lossType === "apo_zero_unpaired") assert.ok(logs.every((r) => !("kl" in r) || r.kl === 0), "APO-zero has no KL term");
    release(result.params);
  });
}

test("stories260K on rt-polarity: training lowers the loss and opens a gap between desirable and undesirable rewards on its data", async () => {
  await initEngine();
  const dir = await tempDir();
  const model = await loadModel(sharedData("llama2c/stories260K.bin"));
  const tok = await resolveTokenizer(model);
  // 64 sentence pairs as preference records (empty prompt, as the folder reads): each gives a
  // positive (desirable) and a negative (undesirable) example. The evaluation runs on these same
  // examples: 12 steps learn them, where 64 pairs are too few to say much about unseen sentences.
  const file = join(dir, "rt-polarity.jsonl");
  writeFileSync(file, readRtPolarity(sharedData("rt-polarity")).pairs.slice(0, 64).map((p) => JSON.stringify({ prompt: "", chosen: p.chosen, rejected: p.rejected })).join("\n") + "\n");
  const records = readKtoData(file, tok);
  // max_length 32 (sentences cut) gives every batch one shape, so each program compiles once.
  const cfg = config({ learning_rate: 1e-3, per_device_train_batch_size: 8, per_device_eval_batch_size: 16, max_length: 32, max_steps: 12, eval_steps: 12, lr_scheduler_type: "linear", warmup_steps: 2 });
  const fit = (rs: KtoExample[][]) => fitKtoExamples(rs.flat(), cfg, model.arch).examples;
  const { train: items } = await withRefs(model.arch, model.params, { train: fit(records), eval: [] }, cfg);
  const data = { train: items, eval: items };
  assert.equal(ktoWeightAdvice(data.train, cfg), null, "balanced data needs no other weights");
  assert.match(ktoWeightAdvice(data.train.filter((e, i) => e.label || i % 4 === 1), cfg)!, /64 desirable and 32 undesirable examples: set desirable_weight in \[0\.5, 0\.6\d\] or undesirable_weight in \[1\.5, 2\]/);
  const result = await train(ktoTask(model.arch, cfg, data, { modelConfig: model.config }, tok.padTokenId ?? 0), model.params, { outputDir: dir, evaluateAtStart: true, ...quiet });
  const [start, end] = result.state.log_history.filter((r) => "eval_loss" in r);
  const trainLosses = result.state.log_history.filter((r) => "loss" in r).map((r) => r.loss!);
  const [before, after] = [ktoMeans(start!, "eval_"), ktoMeans(end!, "eval_")];
  const report = `loss ${start!.eval_loss} → ${end!.eval_loss}, margin ${before.margin} → ${after.margin}; train losses ${trainLosses.map((l) => l.toFixed(3)).join(" ")}`;
  assert.ok(end!.eval_loss! < start!.eval_loss! - 0.01, report);
  assert.ok(after.margin > 0.1 && Math.abs(before.margin) < 1e-5, report);
  release(result.params);
});

test("rlhf kto on stories260K: --help, one-line errors, exactly the documented metric names in metrics.jsonl, ½ at step 0, --resume, a model that reloads", async () => {
  await initEngine();
  const dir = await tempDir();
  const model = sharedData("llama2c/stories260K.bin");
  const data = join(dir, "kto.jsonl");
  const animals = ["cat", "dog", "bird", "fish"];
  const records = animals.flatMap((a) => [
    { prompt: `Once upon a time, there was a ${a}.`, completion: " It was happy.", label: true },
    { prompt: `Once upon a time, there was a ${a}.`, completion: " It was sad!", label: false },
    { prompt: [{ role: "user", content: `Tell me about the ${a}.` }], completion: [{ role: "assistant", content: "It is nice." }], label: true },
    { prompt: `The ${a} went out.`, chosen: " It played.", rejected: " It cried." },
  ]);
  writeFileSync(data, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const help = spawnSync(process.execPath, [bin, "kto", "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0);
  for (const flag of ["--ref-model PATH", "--eval-data FILE", "--dry-run", "--loss_type NAME", "--desirable_weight N", "--undesirable_weight N", "--beta N"]) assert.ok(help.stdout.includes(flag), flag);
  const bad = spawnSync(process.execPath, [bin, "kto", "--model", model, "--data", data, "--output", join(dir, "x"), "--per_device_train_batch_size", "1"], { encoding: "utf8" });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /loss_type kto needs per_device_train_batch_size of at least 2/);

  const args = (steps: number) => ["kto", "--model", model, "--data", data, "--output", out, "--max-steps", String(steps), "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "16", "--learning_rate", "1e-3", "--eval_split_ratio", "0.25", "--logging_steps", "1", "--eval_steps", "3", "--max_length", "32", "--save_steps", "3"];
  const rlhf = (a: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...a], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return r;
  };
  const out = join(dir, "out");
  const run = rlhf(args(3));
  // 16 records, 4 held out: the 12 training records hold 4 pairs, two examples each.
  assert.match(run.stderr, /kto: 16 training examples \(\d+ desirable \+ \d+ undesirable\), \d+ held out; loss_type kto, beta 0.1/);
  assert.match(run.stderr, /kto: done after 3 steps; final model in .* \(held-out rewards\/chosen -?\d/);
  // Resumed to a fourth step, with the reference log-probs read back from the output directory.
  const resumed = rlhf([...args(4), "--resume"]);
  assert.match(resumed.stderr, /reference log-probs of 20 examples read from .*kto_ref_logps\.json/);
  assert.match(resumed.stderr, /resuming from .*checkpoint-3 \(step 3 of 4\)/);
  const lines = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  const trainLines = lines.filter((l) => "loss" in l);
  assert.deepEqual(trainLines.map((l) => l.step), [1, 2, 3, 4]);
  assertLogsDocumented(lines, "KTO");
  assert.ok(lines.every((l) => Object.values(l).every(Number.isFinite)), "every logged value is finite");
  const evals = lines.filter((l) => "eval_loss" in l);
  assert.deepEqual(evals.map((l) => l.step), [0, 3, 4]);
  assert.ok(Math.abs(evals[0]!.eval_loss! - 0.5) < 1e-5 && evals[0]!.eval_kl === 0, JSON.stringify(evals[0]));

  const trained = await loadModel(out);
  assert.deepEqual(trained.config.architectures, ["LlamaForCausalLM"]);
  release(trained.params);
});
