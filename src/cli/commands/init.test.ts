// `rlhf init`: the shipped configs parse, a model initialised from each (cut to one layer) loads back
// with the weights of the architecture's init rule, the weights depend on the seed and on nothing
// else, and bad input fails with one line that names the file and field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { release, toHost } from "../../engine/arrays.ts";
import { architectureFor } from "../../models/architecture.ts";
import { parseConfig } from "../../models/config.ts";
import { disposeModel, loadModel } from "../../models/load.ts";
import { initParams } from "../../models/params.ts";
import { sharedData, tempDir } from "../../io/test-helpers.ts";
import { runRlhf, runRlhfOk } from "../test-helpers.ts";
import { shippedConfigsDir } from "../config-file.ts";

const shipped = readdirSync(shippedConfigsDir).filter((f) => f.endsWith(".json")).sort();
const jsonOf = (file: string) => JSON.parse(readFileSync(join(shippedConfigsDir, file), "utf8")) as Record<string, unknown>;

test("the shipped configs are the models they are named after", () => {
  assert.deepEqual(shipped, ["bench-standard.json", "gpt2-124m.json", "qwen2.5-0.5b.json", "smollm2-135m.json"]);
  const sizes = (file: string) => {
    const j = jsonOf(file);
    return j.model_type === "gpt2" ? [j.n_embd, j.n_layer, j.n_head, j.vocab_size] : [j.hidden_size, j.intermediate_size, j.num_hidden_layers, j.num_attention_heads, j.num_key_value_heads, j.vocab_size];
  };
  assert.deepEqual(sizes("smollm2-135m.json"), [576, 1536, 30, 9, 3, 49152]);
  assert.deepEqual(sizes("gpt2-124m.json"), [768, 12, 12, 50257]);
  assert.deepEqual(sizes("qwen2.5-0.5b.json"), [896, 4864, 24, 14, 2, 151936]);
  assert.deepEqual(sizes("bench-standard.json"), [256, 4, 4, 512]);
});

for (const file of shipped) {
  test(`configs/${file} parses`, () => {
    const config = parseConfig(jsonOf(file), file);
    assert.equal(config.model_type, jsonOf(file).model_type);
  });
}

/** The config with one layer: the real widths and vocabulary, a fraction of the time. */
function oneLayer(json: Record<string, unknown>): Record<string, unknown> {
  return json.model_type === "gpt2" ? { ...json, n_layer: 1 } : { ...json, num_hidden_layers: 1 };
}

for (const file of shipped) {
  test(`init from configs/${file} (one layer) loads back with the init rule's weights`, async () => {
    const dir = await tempDir();
    const configPath = join(dir, "config.json");
    await writeFile(configPath, JSON.stringify(oneLayer(jsonOf(file))));
    const out = join(dir, "model");
    const r = runRlhfOk(["init", "--config", configPath, "--output", out, "--seed", "7"]);
    assert.match(r.stderr, /init: [\d,]+ parameters .* seed 7…\n.*writing/s);
    const model = await loadModel(out);
    const expected = parseConfig(oneLayer(jsonOf(file)), file);
    assert.equal(model.config.model_type, expected.model_type);
    assert.equal(model.arch.vocabSize, expected.vocab_size);
    assert.equal(model.config.tie_word_embeddings, expected.tie_word_embeddings);
    const reference = initParams(architectureFor(expected), 7);
    assert.deepEqual(Object.keys(model.params).sort(), Object.keys(reference).sort());
    for (const [name, p] of Object.entries(reference)) {
      assert.deepEqual(await toHost(model.params[name]!.ref), await toHost(p.ref), name);
    }
    release(reference);
    disposeModel(model);
    const generation = JSON.parse(await readFile(join(out, "generation_config.json"), "utf8"));
    assert.deepEqual([generation.bos_token_id, generation.eos_token_id], [expected.bos_token_id, expected.eos_token_id]);
  });
}

test("init is deterministic in the seed, includes the tokenizer, and refuses bad input in one line", async () => {
  const dir = await tempDir();
  const config = join(dir, "tiny.json");
  const tiny = { model_type: "llama", hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 600, max_position_embeddings: 64 };
  await writeFile(config, JSON.stringify(tiny));
  const weights = async (seed: number, name: string) => {
    runRlhfOk(["init", "--config", config, "--output", join(dir, name), "--seed", String(seed), "--tokenizer", sharedData("llama2c/tok512.bin")]);
    return readFile(join(dir, name, "model.safetensors"));
  };
  const a = await weights(1, "a");
  assert.ok(a.equals(await weights(1, "b")), "the same seed gives the same weights");
  assert.ok(!a.equals(await weights(2, "c")), "another seed gives other weights");
  assert.ok(readdirSync(join(dir, "a")).some((f) => f.startsWith("tokenizer")), readdirSync(join(dir, "a")).join(", "));

  const fails = (args: string[], message: RegExp) => {
    const r = runRlhf(["init", ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  };
  fails(["--config", join(dir, "missing.json"), "--output", join(dir, "x")], /config not found: .*missing\.json/);
  await writeFile(join(dir, "broken.json"), "{ \"model_type\": ");
  fails(["--config", join(dir, "broken.json"), "--output", join(dir, "x")], /broken\.json: not valid JSON/);
  await writeFile(join(dir, "bad.json"), JSON.stringify({ ...tiny, num_attention_heads: 3 }));
  fails(["--config", join(dir, "bad.json"), "--output", join(dir, "x")], /bad\.json: num_attention_heads = 3 must divide hidden_size = 16/);
  fails(["--config", config, "--output", join(dir, "a")], /a already exists/);
  fails(["--config", config, "--output", join(dir, "x"), "--tokenizer", sharedData("llama2c/tokenizer.bin")], /tokenizer has 32000 tokens but .*tiny\.json has vocab_size 600/);
  fails(["--config", config], /--output is required/);
});

test("init --config takes a shipped config's name", async () => {
  const out = join(await tempDir(), "standard");
  runRlhfOk(["init", "--config", "bench-standard", "--output", out]);
  assert.equal(JSON.parse(await readFile(join(out, "config.json"), "utf8")).n_embd, 256);
  const r = runRlhf(["init", "--config", "no-such-model", "--output", out]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /config not found: no-such-model \(.*shipped configs: bench-standard, gpt2-124m, qwen2.5-0.5b, smollm2-135m\)/);
});
