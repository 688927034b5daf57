// LoRA against references that share no code with it: a LoRA projection's output and gradients
// against plain PyTorch LoRA (a Llama projection with a bias, as Qwen2's q/k/v have, and a GPT-2
// Conv1D), and an adapter written in PEFT's layout by a Python script loading into `rlhf generate`
// and `rlhf merge` to generate what the script's own float64 merge predicts
// (scripts/reference/lora_reference.py). Then the target and init rules, and refusals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runRlhf, runRlhfOk } from "../cli/test-helpers.ts";
import { initEngine, valueAndGrad, type Array } from "../engine/runtime.ts";
import { compile, fromHost, release, toHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { readAdapterConfig } from "./adapter-files.ts";
import { architectureFor } from "./architecture.ts";
import { parseConfig } from "./config.ts";
import { loraWeightNames, project } from "./layers.ts";
import { initAdapter, mergeAdapter, resolveTargetModules, targetedModules, withAdapter, type LoraConfig } from "./lora.ts";
import type { LoadedModel } from "./load.ts";
import { copyParams, initParams } from "./params.ts";
import { logitsOf, loraReference } from "./test-helpers.ts";
import type { Params } from "./types.ts";


function maxRelError(a: Float32Array, b: number[]): number {
  let worst = 0;
  const scale = Math.max(...b.map(Math.abs));
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / scale);
  return worst;
}

const layerCases = {
  "a Llama projection [out, in] with a bias": { conv1d: false, bias: true },
  "a GPT-2 Conv1D projection [in, out]": { conv1d: true, bias: true },
  "a Llama projection without bias": { conv1d: false, bias: false },
};

for (const [label, { conv1d, bias }] of Object.entries(layerCases)) {
  test(`LoRA on ${label}: output and the gradients with respect to x, A and B match PyTorch`, async () => {
    await initEngine();
    const [batch, time, fanIn, fanOut, r, scaling] = [2, 3, 12, 10, 4, 32 / 4];
    const rng = new HostRng(conv1d ? 5 : 6);
    const random = (n: number, scale: number) => Array.from({ length: n }, () => scale * rng.normal());
    const x = random(batch * time * fanIn, 1);
    const weight = random(fanIn * fanOut, 0.3);
    const b = random(fanOut, 0.1);
    const a = random(r * fanIn, 0.3);
    const loraB = random(fanOut * r, 0.3); // not zero, or B would get no gradient through A
    const cotangent = random(batch * time * fanOut, 1);
    const dir = await tempDir();
    writeFileSync(join(dir, "layer.json"), JSON.stringify({ x: nest(x, [batch, time, fanIn]), weight: nest(weight, conv1d ? [fanIn, fanOut] : [fanOut, fanIn]), bias: bias ? b : null, lora_A: nest(a, [r, fanIn]), lora_B: nest(loraB, [fanOut, r]), scaling, conv1d, cotangent: nest(cotangent, [batch, time, fanOut]) }));
    loraReference(["layer", dir]);
    const want = JSON.parse(readFileSync(join(dir, "layer-reference.json"), "utf8")) as Record<string, unknown[]>;

    const m = "model.layers.0.self_attn.q_proj";
    const names = loraWeightNames(m);
    const frozen: Params = { [`${m}.weight`]: fromHost(weight, conv1d ? [fanIn, fanOut] : [fanOut, fanIn]), ...(bias ? { [`${m}.bias`]: fromHost(b, [fanOut]) } : {}) };
    const lora = { scaling, dropout: 0, index: new Map([[m, 0]]) };
    const objective = (v: { x: Array; a: Array; b: Array }, f: Params, g: Array) => {
      const y = project({ ...f, [names.a]: v.a, [names.b]: v.b }, m, v.x, { lora, conv1d });
      return [y.ref.mul(g).sum(), y] as [Array, Array];
    };
    const run = compile((v: { x: Array; a: Array; b: Array }, f: Params, g: Array) => {
      const [[, y], grads] = (valueAndGrad(objective, { hasAux: true }) as unknown as (...args: unknown[]) => [[Array, Array], { x: Array; a: Array; b: Array }])(v, f, g);
      return { y, grads };
    });
    const inputs = { x: fromHost(x, [batch, time, fanIn]), a: fromHost(a, [r, fanIn]), b: fromHost(loraB, [fanOut, r]) };
    const g = fromHost(cotangent, [batch, time, fanOut]);
    const out = run(inputs, frozen, g);
    const checks: [string, Array, unknown[]][] = [["y", out.y, want.y!], ["dL/dx", out.grads.x, want.grad_x!], ["dL/dA", out.grads.a, want.grad_A!], ["dL/dB", out.grads.b, want.grad_B!]];
    for (const [name, got, expected] of checks) {
      const err = maxRelError(await toHost(got), (expected as number[]).flat(3) as number[]);
      assert.ok(err < 1e-5, `${name}: largest error ${err} of the largest value`);
    }
    run.dispose();
    release([inputs, frozen, g]);
  });
}

function nest(flat: number[], shape: number[]): unknown {
  if (shape.length === 1) return flat;
  const size = flat.length / shape[0]!;
  return Array.from({ length: shape[0]! }, (_, i) => nest(flat.slice(i * size, (i + 1) * size), shape.slice(1)));
}

test("an adapter written in PEFT's layout by a Python script loads: rlhf generate and rlhf merge give what the script's own merge predicts", async () => {
  const dir = await tempDir();
  const base = sharedData("tinystories-656k");
  const adapter = join(dir, "peft-adapter");
  const predicted = JSON.parse(loraReference(["write-adapter", adapter, base])) as { completion_ids: number[]; min_top2_margin: number };
  const generate = (model: string, extra: string[] = []) =>
    (JSON.parse(runRlhfOk(["generate", "--model", model, ...extra, "--temperature", "0", "--max-new-tokens", "48", "--json"]).stdout) as { completion_ids: number[] }).completion_ids;
  const plain = generate(base);
  assert.notDeepEqual(predicted.completion_ids, plain, "the script's adapter changes what the base generates");
  assert.deepEqual(generate(adapter), predicted.completion_ids, `smallest greedy margin in the reference: ${predicted.min_top2_margin}`);
  // Relative base_model_name_or_path fails over to --base; rlhf merge writes full weights that generate the same.
  const config = JSON.parse(readFileSync(join(adapter, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(join(adapter, "adapter_config.json"), JSON.stringify({ ...config, base_model_name_or_path: "some-org/TinyStories-656K" }));
  const missing = runRlhf(["generate", "--model", adapter, "--max-new-tokens", "2"]);
  assert.match(missing.stderr, /adapter_config\.json: base_model_name_or_path "some-org\/TinyStories-656K" is not a local path .*pass --base PATH/);
  assert.deepEqual(generate(adapter, ["--base", base]), predicted.completion_ids);
  const merged = join(dir, "merged");
  runRlhfOk(["merge", "--adapter", adapter, "--base", base, "--output", merged]);
  assert.deepEqual(generate(merged), predicted.completion_ids);
});

const tinyConfigs = {
  llama: { model_type: "llama", vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: false },
  "gpt2 (Conv1D)": { model_type: "gpt2", vocab_size: 32, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 16 },
};

for (const [label, json] of Object.entries(tinyConfigs)) {
  test(`${label}: the merged weights W + s·B·A give the logits of the adapter run beside W (all-linear, rsLoRA, a saved module)`, async () => {
    await initEngine();
    const config = parseConfig(json, label);
    const model = { config, arch: architectureFor(config), params: initParams(architectureFor(config), 2), path: label, format: "hf-dir" } as LoadedModel;
    const head = label === "llama" ? "lm_head" : "ln_f";
    const lora: LoraConfig = { task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: resolveTargetModules(model.arch, ["all-linear"]), modules_to_save: [head], fan_in_fan_out: label !== "llama", use_rslora: true, base_model_name_or_path: null };
    const adapter = initAdapter(model.arch, lora, model.params, 4);
    // B = 0 would make any merge look right; and the saved module must differ from the base's.
    const rng = new HostRng(9);
    for (const [name, p] of Object.entries(adapter)) adapter[name] = fromHost(Float32Array.from({ length: p.size }, () => 0.2 * rng.normal()), p.shape);
    const ids = [1, 5, 9, 3, 30, 2, 7];
    const unmerged = await logitsOf({ ...model, arch: withAdapter(model.arch, lora), params: { ...model.params, ...adapter } }, ids);
    const plain = await logitsOf(model, ids);
    const mergedParams = mergeAdapter(model.arch, lora, copyParams(model.params), copyParams(adapter));
    const merged = await logitsOf({ ...model, params: mergedParams }, ids);
    const diff = (a: Float32Array, b: Float32Array) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
    assert.ok(diff(unmerged, plain) > 0.1, "the adapter changes the logits");
    assert.ok(diff(merged, unmerged) < 1e-5, `merged vs unmerged: ${diff(merged, unmerged)}`);
    release([model.params, adapter, mergedParams]);
  });
}

test("target modules: PEFT's default per model_type, all-linear as the short names of every block matrix, unknown names refused", async () => {
  await initEngine();
  const llama = architectureFor(parseConfig({ model_type: "llama", vocab_size: 32, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, tie_word_embeddings: true }, "llama"));
  const gpt2 = architectureFor(parseConfig({ model_type: "gpt2", vocab_size: 32, n_embd: 8, n_layer: 2, n_head: 2, n_positions: 16 }, "gpt2"));
  assert.deepEqual(resolveTargetModules(llama, null), ["q_proj", "v_proj"]);
  assert.deepEqual(resolveTargetModules(gpt2, null), ["c_attn"]);
  assert.deepEqual(resolveTargetModules(llama, ["all-linear"]), ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]);
  assert.deepEqual(resolveTargetModules(gpt2, ["all-linear"]), ["c_attn", "c_fc", "c_proj"]);
  // A suffix matches as PEFT matches it: "c_proj" is both the attention's and the MLP's.
  assert.deepEqual(targetedModules(gpt2, { target_modules: ["c_proj"] }), ["transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj", "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"]);
  assert.deepEqual(targetedModules(llama, { target_modules: ".*\\.1\\.self_attn\\.(q|v)_proj" }), ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]);
  assert.throws(() => resolveTargetModules(llama, ["q_proj", "c_attn"]), /lora_target_modules: c_attn is not a linear projection of this llama model \(down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj, or all-linear\)/);
  assert.throws(() => targetedModules(llama, { target_modules: ["lm_head"] }), /matches none of the model's linear projections/);
});

test("a fresh adapter is PEFT's: A ~ U(−1/√in, 1/√in) with in = the Conv1D's first axis, B = 0, seeded", async () => {
  await initEngine();
  const arch = architectureFor(parseConfig({ model_type: "gpt2", vocab_size: 32, n_embd: 64, n_layer: 1, n_head: 2, n_positions: 16 }, "gpt2"));
  const base = initParams(arch, 1);
  const config: LoraConfig = { task_type: "CAUSAL_LM", r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: ["c_fc", "c_proj"], modules_to_save: null, fan_in_fan_out: true, use_rslora: false, base_model_name_or_path: null };
  const adapter = initAdapter(arch, config, base, 3);
  const shapes = Object.fromEntries(Object.entries(adapter).map(([k, v]) => [k, v.shape]));
  assert.deepEqual(shapes, {
    "transformer.h.0.mlp.c_fc.lora_A.weight": [8, 64], "transformer.h.0.mlp.c_fc.lora_B.weight": [256, 8],
    "transformer.h.0.attn.c_proj.lora_A.weight": [8, 64], "transformer.h.0.attn.c_proj.lora_B.weight": [64, 8],
    "transformer.h.0.mlp.c_proj.lora_A.weight": [8, 256], "transformer.h.0.mlp.c_proj.lora_B.weight": [64, 8],
  });
  const a = await toHost(adapter["transformer.h.0.mlp.c_proj.lora_A.weight"]!.ref);
  const bound = 1 / Math.sqrt(256);
  assert.ok(a.every((v) => Math.abs(v) <= bound) && Math.max(...a.map(Math.abs)) > 0.95 * bound, "uniform on the whole interval");
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
  assert.ok(Math.abs(variance / (bound * bound / 3) - 1) < 0.1, `variance ${variance} vs bound²/3`);
  assert.ok((await toHost(adapter["transformer.h.0.mlp.c_fc.lora_B.weight"]!.ref)).every((v) => v === 0));
  const again = initAdapter(arch, config, base, 3);
  assert.deepEqual(await toHost(again["transformer.h.0.mlp.c_proj.lora_A.weight"]!.ref), a);
  release([base, adapter, again]);
});

test("adapter_config.json settings that compute something else are refused, naming the file and field", async () => {
  const dir = await tempDir();
  const write = (fields: Record<string, unknown>) => writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj"], ...fields }));
  write({ use_dora: true });
  await assert.rejects(readAdapterConfig(dir), /adapter_config\.json: use_dora asks for DoRA, which is not supported, got true/);
  write({ bias: "all" });
  await assert.rejects(readAdapterConfig(dir), /bias asks for trained biases/);
  write({ peft_type: "IA3" });
  await assert.rejects(readAdapterConfig(dir), /peft_type must be "LORA"/);
  write({ r: 0 });
  await assert.rejects(readAdapterConfig(dir), /r must be a positive integer, got 0/);
  write({ init_lora_weights: "pissa_niter_4" });
  await assert.rejects(readAdapterConfig(dir), /init_lora_weights changed the base weights at init/);
  write({ lora_dropout: 0.1, use_rslora: true, modules_to_save: ["score"], task_type: "SEQ_CLS" });
  assert.deepEqual(await readAdapterConfig(dir), { task_type: "SEQ_CLS", r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ["q_proj"], modules_to_save: ["score"], fan_in_fan_out: false, use_rslora: true, base_model_name_or_path: null });
});
