// LoRA SFT: the training step differentiates the adapter only (its gradients equal those of the
// same loss differentiated jointly with the base, and no base gradient or moment exists); `rlhf sft
// --use_peft` on a real checkpoint writes PEFT's files, leaves the base alone, and its adapter
// generates exactly what an independent float64 merge of the saved files generates
// (scripts/reference/lora_reference.py); and a LoRA run with dropout resumes bit for bit after kill -9.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { runRlhf, runRlhfOk } from "../cli/test-helpers.ts";
import { initEngine } from "../engine/runtime.ts";
import { compile, fromHost, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { architectureFor } from "../models/architecture.ts";
import { loadModel } from "../models/load.ts";
import { initAdapter, resolveTargetModules, withAdapter, type LoraConfig } from "../models/lora.ts";
import { loraReference } from "../models/test-helpers.ts";
import { readAdapterConfig } from "../models/adapter-files.ts";
import type { Params } from "../models/types.ts";
import { defaultSFTConfig } from "./config.ts";
import { trainStepConfig } from "./optimizer.ts";
import { sftBatch, sftLoss, sftRows, type SftBatch } from "./sft.ts";
import { lossAndGradients, TrainStep } from "./step.ts";
import { assertAllChanged, assertResumesAfterKill, demonstrations, hostParams, tinyModel } from "./test-helpers.ts";

const BASE = "tinystories-656k";

/** The five TinyStories stories, a record per paragraph (18), as SFT "text" data. */
function storiesFile(dir: string): string {
  const text = readFileSync(sharedData("tinystories/tinystories_sample.txt"), "utf8");
  const paragraphs = text.split(/<\|endoftext\|>|\n/).map((p) => p.trim()).filter((p) => p.length > 0);
  const path = join(dir, "stories.jsonl");
  writeFileSync(path, paragraphs.map((p) => JSON.stringify({ text: p })).join("\n") + "\n");
  return path;
}

for (const modulesToSave of [null, ["lm_head"]]) {
  test(`the step differentiates the adapter only${modulesToSave ? ", and a saved lm_head whole" : " (the head frozen)"}: gradients as if differentiated with the base, no base gradient or moment`, async () => {
    await initEngine();
    const { config, params: base } = tinyModel(3);
    const arch = architectureFor(config);
    const lora: LoraConfig = { task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: resolveTargetModules(arch, ["all-linear"]), modules_to_save: modulesToSave, fan_in_fan_out: false, use_rslora: false, base_model_name_or_path: null };
    const adapter = initAdapter(arch, lora, base, 1);
    const rng = new HostRng(2); // B = 0 would give A no gradient
    for (const name of Object.keys(adapter).filter((k) => k.endsWith("lora_B.weight"))) adapter[name] = fromHost(Float32Array.from({ length: adapter[name]!.size }, () => 0.1 * rng.normal()), adapter[name]!.shape);
    const loss = sftLoss(withAdapter(arch, lora));
    const batch = sftBatch(sftRows(demonstrations(4), { ...defaultSFTConfig, max_length: 16 }), 16).batch;

    const vg = lossAndGradients(loss);
    const split = compile((p: Params, b: SftBatch, frozen: Params) => vg(p, b, { frozen })[1]);
    const joint = compile((p: Params, b: SftBatch) => vg(p, b)[1]);
    const splitGrads = split(adapter, batch, base);
    const jointGrads = joint({ ...base, ...adapter }, batch);
    assert.deepEqual(Object.keys(splitGrads).sort(), Object.keys(adapter).sort(), "gradients of the adapter's parameters only");
    for (const name of Object.keys(adapter)) {
      const [a, b] = [await toHost(splitGrads[name]!.ref), await toHost(jointGrads[name]!.ref)];
      assert.ok(a.some((x) => x !== 0), `${name} has a gradient`);
      assert.ok(a.every((x, i) => Math.abs(x - b[i]!) <= 1e-6 * (1 + Math.abs(b[i]!))), `${name}: split and joint gradients differ`);
    }
    release([splitGrads, jointGrads]);
    split.dispose();
    joint.dispose();

    const baseBefore = await hostParams(base);
    const adapterBefore = await hostParams(adapter);
    const step = new TrainStep(loss, trainStepConfig({ ...defaultSFTConfig, learning_rate: 1e-2 }));
    const out = await step.step(adapter, step.init(adapter), [batch], 1e-2, 1, base);
    assert.deepEqual(Object.keys(out.params).sort(), Object.keys(adapterBefore).sort());
    assert.deepEqual(Object.keys(out.state.mu).sort(), Object.keys(adapterBefore).sort(), "Adam moments of the adapter only");
    assertAllChanged(adapterBefore, await hostParams(out.params));
    assert.deepEqual(await hostParams(base), baseBefore, "the base is untouched");
    step.dispose();
    release([out.params, out.state, base, batch]);
  });
}

test("rlhf sft --use_peft on tinystories-656k: PEFT's files, the base untouched, and the adapter generates what an independent merge of its files generates", async () => {
  const dir = await tempDir();
  const base = sharedData(BASE);
  const digest = () => createHash("sha256").update(readFileSync(join(base, "model.safetensors"))).digest("hex");
  const before = digest();
  const out = join(dir, "lora");
  runRlhfOk(["sft", "--model", base, "--data", storiesFile(dir), "--output", out, "--use_peft", "--lora_target_modules", "all-linear", "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", "0.1",
    "--max_steps", "12", "--save_steps", "6", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", "--max_length", "64", "--logging_steps", "6"]);
  assert.equal(digest(), before, "the base's weights on disk are unchanged");

  const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  const { peft_type, task_type, r, lora_alpha, lora_dropout, target_modules, modules_to_save, bias, fan_in_fan_out, use_rslora, inference_mode, base_model_name_or_path } = config;
  assert.deepEqual(
    { peft_type, task_type, r, lora_alpha, lora_dropout, target_modules, modules_to_save, bias, fan_in_fan_out, use_rslora, inference_mode, base_model_name_or_path },
    { peft_type: "LORA", task_type: "CAUSAL_LM", r: 8, lora_alpha: 16, lora_dropout: 0.1, target_modules: ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"], modules_to_save: null, bias: "none", fan_in_fan_out: false, use_rslora: false, inference_mode: true, base_model_name_or_path: resolve(base) },
  );
  const saved = (await readSafetensors(join(out, "adapter_model.safetensors"))).tensors;
  const modules = [0, 1].flatMap((i) => ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"].map((m) => `model.layers.${i}.${m}`));
  const keys = modules.flatMap((m) => [`base_model.model.${m}.lora_A.weight`, `base_model.model.${m}.lora_B.weight`]);
  assert.deepEqual([...saved.keys()].sort(), keys.sort(), "PEFT's keys, the adapter's tensors only");
  assert.deepEqual(saved.get("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight")!.shape, [8, 384]);
  assert.deepEqual(saved.get("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight")!.shape, [64, 8]);
  for (const key of keys) assert.ok(saved.get(key)!.data.some((x) => x !== 0), `${key} is not zero`);
  // Every A moved from PEFT's init (the run's seed, 42).
  await initEngine();
  const model = await loadModel(base);
  const fresh = await hostParams(initAdapter(model.arch, await readAdapterConfig(out), model.params, 42));
  for (const m of modules) assert.ok(fresh[`${m}.lora_A.weight`]!.some((x, i) => x !== saved.get(`base_model.model.${m}.lora_A.weight`)!.data[i]), `${m}.lora_A did not change`);
  const moments = (await readSafetensors(join(out, "checkpoint-6", "optimizer.safetensors"))).tensors;
  assert.deepEqual([...moments.keys()].sort(), modules.flatMap((m) => ["A", "B"].flatMap((x) => [`exp_avg.${m}.lora_${x}.weight`, `exp_avg_sq.${m}.lora_${x}.weight`])).sort(), "optimizer moments of the adapter only");

  const generated = JSON.parse(runRlhfOk(["generate", "--model", out, "--temperature", "0", "--max-new-tokens", "48", "--json"]).stdout) as { completion_ids: number[] };
  const reference = JSON.parse(loraReference(["merged-greedy", out, base, "48"])) as { completion_ids: number[]; min_top2_margin: number };
  assert.deepEqual(generated.completion_ids, reference.completion_ids, `smallest greedy margin in the reference: ${reference.min_top2_margin}`);
  const plain = JSON.parse(runRlhfOk(["generate", "--model", base, "--temperature", "0", "--max-new-tokens", "48", "--json"]).stdout) as { completion_ids: number[] };
  assert.notDeepEqual(plain.completion_ids, generated.completion_ids, "the adapter changed what the model writes");
  release(model.params);
});

test("a LoRA SFT run with dropout killed with SIGKILL and resumed ends bit for bit where an uninterrupted one ends; the dropout acts; the LoRA fields cannot change on resume", async () => {
  const dir = await tempDir();
  const data = storiesFile(dir);
  const run = (dropout: string) => (output: string) => ["sft", "--model", sharedData(BASE), "--data", data, "--output", output, "--use_peft", "--lora_r", "4", "--lora_dropout", dropout,
    "--max_length", "48", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", "--max_steps", "24", "--save_steps", "4", "--logging_steps", "4", "--eval_steps", "12", "--learning_rate", "3e-3"];
  await assertResumesAfterKill(dir, run("0.1"), 8);
  const noDropout = join(dir, "no-dropout");
  runRlhfOk(run("0")(noDropout));
  const adapterOf = (d: string) => readFileSync(join(d, "adapter_model.safetensors"));
  assert.ok(!adapterOf(noDropout).equals(adapterOf(join(dir, "straight"))), "lora_dropout 0.1 trains differently from 0");
  assert.ok(readdirSync(join(dir, "straight")).includes("checkpoint-24"));
  const changed = runRlhf([...run("0.1")(join(dir, "straight")), "--resume", "--lora_r", "8"]);
  assert.notEqual(changed.status, 0);
  assert.match(changed.stderr, /was trained with lora_r = 4, now 8; resuming needs the same value/);
});
