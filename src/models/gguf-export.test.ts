// GGUF exports run in llama.cpp (node-llama-cpp's CPU build) as they run here: the same prompt ids
// from both tokenizers, the same greedy tokens, and log-probs within a stated tolerance, for the two
// real checkpoints (stories260K from llama2.c, tinystories-656k from transformers), tiny random
// Qwen2 and GPT-2 models, and LoRA adapters (all-linear and attention-only, random nonzero A and B)
// applied by llama.cpp at run time on both real checkpoints.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runRlhf, runRlhfOk } from "../cli/test-helpers.ts";
import { fromHost, release } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { Generator } from "../generation/generate.ts";
import { LlamaCppGenerator } from "../generation/llama-cpp.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { ggufTokenizerMetadata } from "../tokenizers/gguf-vocab.ts";
import { gpt2TokenizerJson, HfTokenizer } from "../tokenizers/hf.ts";
import { loadTokenizer } from "../tokenizers/load.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { architectureFor } from "./architecture.ts";
import { parseConfig } from "./config.ts";
import { writeGgufAdapter, writeGgufModel, type GgufFileType } from "./gguf-export.ts";
import { loadModel, resolveTokenizer, saveAdapter, saveModel, type LoadedModel } from "./load.ts";
import { adapterShapes, resolveTargetModules, type LoraConfig } from "./lora.ts";
import { initParams } from "./params.ts";

const PROMPTS = ["Once upon a time", "Lily and Tom went to the park", "The little dog was sad because", "One day, a big bird"];
const NEW_TOKENS = 40;

/**
 * Both sides compute in float32 (llama.cpp with an F32 KV cache and flash attention off, which
 * would round queries to half precision) and differ only in the order of their sums: a float32 dot
 * product over D terms is off by about √D·2⁻²⁴ of its terms' magnitude, so log-probs agree to a few
 * 1e-6 on the real models (measured: 2.5e-6 and 2.9e-6 over 160 tokens each) and to ~1e-4 where
 * random weights (std 0.3) or an unmerged adapter make logits tens of units large (3.4e-5 for
 * Qwen2, 1.1e-4 for stories260K with LoRA). 1e-3 covers these, while an error in layout (a rotary
 * order, a transposed matrix, a missing bias) moves log-probs by whole units.
 */
const LOGPROB_TOLERANCE = 1e-3;

/** The real models' logits are a few units: the measured 3e-6 with a margin of 7 for other CPUs' kernels. */
const REAL_MODEL_TOLERANCE = 2e-5;

/**
 * ggml's GELU on the CPU reads a table indexed by the input rounded to half precision (GGML_GELU_FP16):
 * a relative error up to 2⁻¹¹ ≈ 5e-4 per activation, which through logits of ~10 units gives a few
 * 1e-3 (measured: 2.3e-3 for the random GPT-2, 2.6e-3 with LoRA). Half a unit of the tolerance's
 * headroom again would still catch layout errors, which change tokens.
 */
const GELU_LOGPROB_TOLERANCE = 1e-2;

/**
 * Quantized weights change the model itself, so greedy decoding may part ways where two tokens are
 * nearly tied; what is checked is how close it stays until then. f16 rounds each weight by up to
 * 2⁻¹¹ relative (log-probs move by ~5e-3 through logits of ~10: measured 3.4e-3 and 5.0e-3, all
 * 320 tokens the same); q8_0 by up to 1/254 of its block's largest value (~1e-1: measured 1.3e-1
 * and 8.3e-2, 249 of 320 tokens the same, one prompt parting after a few tokens).
 */
const QUANTIZED = { f16: { logprob: 5e-2, agreeing: 1 }, q8_0: { logprob: 0.5, agreeing: 0.5 } };

interface Compared {
  sameTokens: number;
  total: number;
  maxLogprobDiff: number;
}

/** Greedy decoding of `prompts` here and in llama.cpp from `gguf`, counting the tokens that agree before the first difference. */
async function compare(model: LoadedModel, gguf: string, promptIds: number[][], options: { lora?: string; kvCacheType?: "F16" | "F32" } = {}): Promise<Compared> {
  const generator = new Generator(model.arch);
  const ours = await generator.generate(model.params, promptIds, { temperature: 0, maxNewTokens: NEW_TOKENS });
  generator.dispose();
  const native = await LlamaCppGenerator.open(gguf, { contextSize: 128, threads: 1, kvCacheType: options.kvCacheType ?? "F32", lora: options.lora });
  const result: Compared = { sameTokens: 0, total: 0, maxLogprobDiff: 0 };
  for (const [i, prompt] of promptIds.entries()) {
    const theirs = await native.greedy(prompt, NEW_TOKENS, { logprobs: true });
    const mine = ours[i]!;
    result.total += NEW_TOKENS;
    let k = 0;
    while (k < NEW_TOKENS && mine.completionIds[k] === theirs.completionIds[k]) {
      result.maxLogprobDiff = Math.max(result.maxLogprobDiff, Math.abs(mine.logprobs[k]! - theirs.logprobs[k]!));
      k++;
    }
    result.sameTokens += k;
  }
  await native.dispose();
  return result;
}

/** `texts` as this project's tokenizer encodes them, checked to be what llama.cpp's tokenizer makes of them from the GGUF metadata. */
async function idsChecked(tokenizer: Tokenizer, gguf: string, texts: readonly string[] = PROMPTS): Promise<number[][]> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: gguf });
  const ids = texts.map((p) => tokenizer.encode(p));
  for (const [i, p] of texts.entries()) {
    const theirs = [...(model.tokens.bos !== null && tokenizer.bosTokenId !== null && ids[i]![0] === tokenizer.bosTokenId ? [model.tokens.bos] : []), ...model.tokenize(p)];
    assert.deepEqual(theirs, ids[i], `llama.cpp tokenizes ${JSON.stringify(p)} differently`);
  }
  await model.dispose();
  return ids;
}

/**
 * Harder texts for the tokenizers: runs of spaces, newlines, punctuation; for stories260K also
 * characters outside its 512 tokens (byte fallback). tinystories-656k's vocabulary has no byte
 * tokens, and llama.cpp aborts on a character it lacks, so its texts stay within the vocabulary.
 */
const HARD_TEXTS = {
  "stories260K": ["Zoë said: \"Hi!\"  Two  spaces\nnew line", "café 🙂 naïve", "  leading spaces", "The cat's toy, and then—what?"],
  "tinystories-656k": ["Tom said: \"Hi!\"  Two  spaces\nnew line", "  leading spaces", "The cat's toy, and then, what?"],
};

async function exportAndCompare(source: string, name: string, type: GgufFileType = "f32"): Promise<{ model: LoadedModel; compared: Compared; gguf: string }> {
  const dir = await tempDir();
  const gguf = join(dir, `${name}-${type}.gguf`);
  await writeGgufModel(source, gguf, { type });
  const model = await loadModel(source);
  const tokenizer = await resolveTokenizer(model);
  const ids = await idsChecked(tokenizer, gguf);
  if (type === "f32") await idsChecked(tokenizer, gguf, HARD_TEXTS[name as keyof typeof HARD_TEXTS]);
  const compared = await compare(model, gguf, ids, { kvCacheType: type === "f32" ? "F32" : "F16" });
  return { model, compared, gguf };
}

for (const [name, source] of [["stories260K", "llama2c/stories260K.bin"], ["tinystories-656k", "tinystories-656k"]] as const) {
  test(`${name} in llama.cpp from an f32 GGUF: same prompt ids, same greedy tokens, log-probs within ${REAL_MODEL_TOLERANCE}`, async () => {
    const { model, compared } = await exportAndCompare(sharedData(source), name);
    console.log(`${name} f32: ${compared.sameTokens}/${compared.total} tokens agree, largest log-prob difference ${compared.maxLogprobDiff.toExponential(2)}`);
    assert.equal(compared.sameTokens, compared.total);
    assert.ok(compared.maxLogprobDiff < REAL_MODEL_TOLERANCE, `log-probs differ by ${compared.maxLogprobDiff}`);
    release(model.params);
  });
}

for (const type of ["f16", "q8_0"] as const) {
  const expected = QUANTIZED[type];
  test(`stories260K and tinystories-656k from ${type} GGUFs: at least ${100 * expected.agreeing}% of greedy tokens the same, log-probs within ${expected.logprob} until they part`, async () => {
    for (const [name, source] of [["stories260K", "llama2c/stories260K.bin"], ["tinystories-656k", "tinystories-656k"]] as const) {
      const { model, compared } = await exportAndCompare(sharedData(source), name, type);
      console.log(`${name} ${type}: ${compared.sameTokens}/${compared.total} tokens agree, largest log-prob difference before the first disagreement ${compared.maxLogprobDiff.toExponential(2)}`);
      assert.ok(compared.sameTokens >= expected.agreeing * compared.total, `${name}: ${compared.sameTokens} of ${compared.total} tokens agree`);
      assert.ok(compared.maxLogprobDiff < expected.logprob, `${name}: log-probs differ by ${compared.maxLogprobDiff}`);
      release(model.params);
    }
  });
}

/** GPT-2's byte-level BPE cut to its first `size` ids (the 256 bytes, then merges in order, as the vocabulary numbers them). */
function smallGpt2Tokenizer(size: number): HfTokenizer {
  const vocab = JSON.parse(readFileSync(sharedData("tokenizers/gpt2-vocab.json"), "utf8")) as Record<string, number>;
  const merges = readFileSync(sharedData("tokenizers/gpt2-merges.txt"), "utf8").split("\n").filter((l) => l !== "" && !l.startsWith("#version"));
  const kept = Object.fromEntries(Object.entries(vocab).filter(([, id]) => id < size));
  return new HfTokenizer(gpt2TokenizerJson(kept, merges.slice(0, size - 256)), {});
}

const TINY_RANDOM = {
  qwen2: { model_type: "qwen2", hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, tie_word_embeddings: true },
  gpt2: { model_type: "gpt2", n_embd: 64, n_layer: 2, n_head: 4, n_positions: 128, tie_word_embeddings: true },
  llama: { model_type: "llama", hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, tie_word_embeddings: false },
};

/** A random model of `kind` saved as an HF directory with a 512-token GPT-2 tokenizer; weights wide enough (std 0.3) that greedy choices are clear. */
async function tinyRandomDir(kind: keyof typeof TINY_RANDOM, dir: string): Promise<string> {
  const config = parseConfig({ ...TINY_RANDOM[kind], vocab_size: 512, initializer_range: 0.3, bos_token_id: null, eos_token_id: null }, kind);
  const params = initParams(architectureFor(config), 7);
  const path = join(dir, kind);
  await saveModel(path, config, params, { tokenizer: smallGpt2Tokenizer(512) });
  release(params);
  return path;
}

for (const kind of ["qwen2", "gpt2"] as const) {
  const tolerance = kind === "gpt2" ? GELU_LOGPROB_TOLERANCE : LOGPROB_TOLERANCE;
  test(`a tiny random ${kind} in llama.cpp from an f32 GGUF: same prompt ids, same greedy tokens, log-probs within ${tolerance}`, async () => {
    const dir = await tempDir();
    const source = await tinyRandomDir(kind, dir);
    const gguf = join(dir, `${kind}.gguf`);
    await writeGgufModel(source, gguf, { type: "f32" });
    const model = await loadModel(source);
    const ids = await idsChecked(await resolveTokenizer(model), gguf);
    const compared = await compare(model, gguf, ids);
    console.log(`random ${kind} f32: ${compared.sameTokens}/${compared.total} tokens agree, largest log-prob difference ${compared.maxLogprobDiff.toExponential(2)}`);
    assert.equal(compared.sameTokens, compared.total);
    assert.ok(compared.maxLogprobDiff < tolerance, `log-probs differ by ${compared.maxLogprobDiff}`);
    release(model.params);
  });
}

/** Attention's projections only, under each family's names (PEFT's usual choice besides all-linear). */
const ATTENTION_ONLY = { llama: ["q_proj", "k_proj", "v_proj", "o_proj"], gpt2: ["c_attn"] };

/** A LoRA adapter on `targets` (every linear module, or attention's) with random nonzero A and B, saved beside its base. */
async function randomAdapter(base: LoadedModel, basePath: string, dir: string, targets: "all-linear" | "attention"): Promise<string> {
  const family = base.config.model_type === "gpt2" ? "gpt2" : "llama";
  const lora: LoraConfig = {
    task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: resolveTargetModules(base.arch, targets === "attention" ? ATTENTION_ONLY[family] : ["all-linear"]),
    modules_to_save: null, fan_in_fan_out: base.config.model_type === "gpt2", use_rslora: false, base_model_name_or_path: basePath,
  };
  const rng = new HostRng(11);
  const params = Object.fromEntries(Object.entries(adapterShapes(base.arch, lora)).map(([name, shape]) => {
    const data = Float32Array.from({ length: shape[0]! * shape[1]! }, () => 0.2 * rng.normal());
    return [name, fromHost(data, shape)];
  }));
  const path = join(dir, "adapter");
  await saveAdapter(path, lora, params);
  release(params);
  return path;
}

const ADAPTER_CASES = [
  ["stories260K", "llama2c/stories260K.bin", "all-linear"],
  ["stories260K", "llama2c/stories260K.bin", "attention"],
  ["tinystories-656k", "tinystories-656k", "all-linear"],
  ["tinystories-656k", "tinystories-656k", "attention"],
  ["gpt2", null, "all-linear"],
] as const;

for (const [kind, source, targets] of ADAPTER_CASES) {
  test(`a LoRA adapter (${targets}) on ${kind} applied by llama.cpp at run time gives the merged model's greedy tokens`, async () => {
    const dir = await tempDir();
    const basePath = source ? sharedData(source) : await tinyRandomDir(kind as "gpt2", dir);
    const baseGguf = join(dir, "base.gguf");
    await writeGgufModel(basePath, baseGguf, { type: "f32" });
    const base = await loadModel(basePath);
    const adapterDir = await randomAdapter(base, basePath, dir, targets);
    const ids = await idsChecked(await resolveTokenizer(base), baseGguf);
    release(base.params);
    const adapterGguf = join(dir, "adapter.gguf");
    await writeGgufAdapter(adapterDir, adapterGguf, { type: "f32" });
    const merged = await loadModel(adapterDir);
    const compared = await compare(merged, baseGguf, ids, { lora: adapterGguf });
    console.log(`${kind} + LoRA (${targets}): ${compared.sameTokens}/${compared.total} tokens agree, largest log-prob difference ${compared.maxLogprobDiff.toExponential(2)}`);
    assert.equal(compared.sameTokens, compared.total);
    const tolerance = kind === "gpt2" ? GELU_LOGPROB_TOLERANCE : LOGPROB_TOLERANCE;
    assert.ok(compared.maxLogprobDiff < tolerance, `log-probs differ by ${compared.maxLogprobDiff}`);
    release(merged.params);
  });
}

test("rlhf convert --to gguf --type q8_0: llama.cpp metadata and a type per tensor; bad settings are one line naming the flag", async () => {
  const dir = await tempDir();
  const gguf = join(dir, "s.gguf");
  runRlhfOk(["convert", "--to", "gguf", "--type", "q8_0", "--model", sharedData("llama2c/stories260K.bin"), "--output", gguf]);
  const { readGgufFileInfo } = await import("node-llama-cpp");
  const info = await readGgufFileInfo(gguf, { readTensorInfo: true });
  const md = info.metadata as unknown as { general: { architecture: string; file_type: number }; llama: { block_count: number; attention: { head_count_kv: number } }; tokenizer: { ggml: { model: string; tokens: string[] } } };
  assert.deepEqual([md.general.architecture, md.general.file_type, md.llama.block_count, md.llama.attention.head_count_kv], ["llama", 7, 5, 4]);
  assert.deepEqual([md.tokenizer.ggml.model, md.tokenizer.ggml.tokens.length, md.tokenizer.ggml.tokens[1]], ["llama", 512, "<s>"]);
  const types = Object.fromEntries(info.tensorInfo!.map((t) => [t.name, t.ggmlType]));
  // q8_0 where rows are whole 32-value blocks (dim 64), f16 where not (hidden 172), f32 vectors; no output.weight (tied).
  assert.deepEqual([types["blk.0.attn_q.weight"], types["blk.0.ffn_down.weight"], types["blk.0.attn_norm.weight"], "output.weight" in types], [8, 1, 0, false]);

  const refused = (args: string[], message: RegExp) => {
    const r = runRlhf(["convert", ...args]);
    assert.equal(r.status, 2, r.stderr); // a usage error
    assert.match(r.stderr.trim(), message);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  };
  refused(["--to", "gguf", "--type", "q4_0", "--model", sharedData("llama2c/stories260K.bin"), "--output", gguf], /--type must be one of f32, f16, q8_0, got "q4_0"/);
  refused(["--to", "onnx", "--model", sharedData("llama2c/stories260K.bin"), "--output", gguf], /--to must be one of hf, gguf, got "onnx"/);
  refused(["--type", "f16", "--model", sharedData("llama2c/stories260K.bin"), "--output", join(dir, "hf")], /--type applies to --to gguf only/);
  const intoDir = runRlhf(["convert", "--to", "gguf", "--model", sharedData("llama2c/stories260K.bin"), "--output", dir]);
  assert.equal(intoDir.status, 1);
  assert.equal(intoDir.stderr.trim(), `rlhf convert: cannot write ${dir}: it is a directory; give a file path`);
});

/** The split rules of Qwen2's and SmolLM's tokenizer.json pre-tokenizers (GPT-2's is ByteLevel's own regex). */
const QWEN2_PRE = { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, behavior: "Isolated", invert: false }, { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false }] };
const SMOLLM_PRE = { type: "Sequence", pretokenizers: [{ type: "Digits", individual_digits: true }, { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }] };

test("byte-level BPE with GPT-2's, Qwen2's and SmolLM's pre-tokenizers: llama.cpp makes the same ids from the GGUF", async () => {
  const dir = await tempDir();
  const vocab = JSON.parse(readFileSync(sharedData("tokenizers/gpt2-vocab.json"), "utf8")) as Record<string, number>;
  const merges = readFileSync(sharedData("tokenizers/gpt2-merges.txt"), "utf8").split("\n").filter((l) => l !== "" && !l.startsWith("#version"));
  const texts = ["Hello world, it's 2024!", "I'LL pay $12,345.67 -- OK?\n\n  indented\tline", "naïve café 🙂 日本語", "x=1+2;y  =  33\r\nend   "];
  for (const [name, pre] of [["gpt-2", null], ["qwen2", QWEN2_PRE], ["smollm", SMOLLM_PRE]] as const) {
    const json = gpt2TokenizerJson(vocab, merges);
    const tokenizer = new HfTokenizer(pre ? { ...json, pre_tokenizer: pre } : json, { eos_token: "<|endoftext|>" });
    const config = parseConfig({ ...TINY_RANDOM.qwen2, hidden_size: 16, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 50257 }, name);
    const params = initParams(architectureFor(config), 1);
    const source = join(dir, name);
    await saveModel(source, config, params, { tokenizer });
    release(params);
    const gguf = join(dir, `${name}.gguf`);
    await writeGgufModel(source, gguf, { type: "f16" });
    await idsChecked(tokenizer, gguf, texts);
  }
});

test("the warning that llama.cpp cannot tokenize text outside a vocabulary without byte tokens is for rlhf convert's files, not for the project's own exports (token ids only)", async () => {
  const tokenizer = await loadTokenizer(sharedData("tinystories-656k"));
  const said: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => (said.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    ggufTokenizerMetadata(tokenizer, tokenizer.vocabSize, "tinystories-656k", { quiet: true });
    assert.deepEqual(said, []);
    ggufTokenizerMetadata(tokenizer, tokenizer.vocabSize, "tinystories-656k");
  } finally {
    process.stderr.write = write;
  }
  assert.match(said.join(""), /tinystories-656k: the vocabulary has no byte tokens/);
});
