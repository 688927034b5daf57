// Shared by the trainer tests: a tiny Llama, made-up demonstrations and preferences, parameter
// comparisons, the kill -9 test of a training command, and the metric names METRICS.md documents.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RLHF_BIN, runRlhfOk } from "../cli/test-helpers.ts";
import type { PreferenceExample, SftExample } from "../data/datasets.ts";
import { release, toHost } from "../engine/arrays.ts";
import { sharedData } from "../io/test-helpers.ts";
import { saveModel } from "../models/load.ts";
import { loadTokenizer } from "../tokenizers/load.ts";
import { HostRng } from "../engine/random.ts";
import { architectureFor } from "../models/architecture.ts";
import { parseConfig, type ModelConfig } from "../models/config.ts";
import { initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { listCheckpoints } from "./checkpoint.ts";

export const VOCAB = 40;

export function tinyConfig(overrides: Record<string, unknown> = {}): ModelConfig {
  return parseConfig(
    { model_type: "llama", architectures: ["LlamaForCausalLM"], vocab_size: VOCAB, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 64, tie_word_embeddings: false, ...overrides },
    "tiny",
  );
}

export function tinyModel(seed = 3, overrides: Record<string, unknown> = {}): { config: ModelConfig; params: Params } {
  const config = tinyConfig(overrides);
  return { config, params: initParams(architectureFor(config), seed) };
}

/** A tiny random Llama with stories260K's 512-token vocabulary, saved with tok512 as DIR/tiny (for CLI tests). */
export async function tinyModelDir(dir: string): Promise<string> {
  const model = join(dir, "tiny");
  const { config, params } = tinyModel(3, { vocab_size: 512 });
  await saveModel(model, config, params, { tokenizer: await loadTokenizer(sharedData("llama2c/tok512.bin")) });
  release(params);
  return model;
}

/** Prompt of 3–6 tokens, completion of 2–8 tokens that copies the prompt backwards (learnable). */
export function demonstrations(n: number, seed = 1): SftExample[] {
  const rng = new HostRng(seed);
  return Array.from({ length: n }, () => {
    const prompt = [1, ...Array.from({ length: 2 + rng.int(4) }, () => 3 + rng.int(VOCAB - 3))];
    const completion = [...prompt.slice(1).reverse(), 2].slice(0, 2 + rng.int(7));
    return { ids: [...prompt, ...completion], completionMask: [...prompt.map(() => 0), ...completion.map(() => 1)] };
  });
}

/** Pairs whose chosen response ends in a low token id and rejected in a high one. */
export function preferences(n: number, seed = 1): PreferenceExample[] {
  const rng = new HostRng(seed);
  return Array.from({ length: n }, () => {
    const prompt = [1, ...Array.from({ length: 2 + rng.int(4) }, () => 3 + rng.int(VOCAB - 3))];
    const good = [...prompt, 3 + rng.int(10)];
    const bad = [...prompt, 25 + rng.int(10), 30];
    return { responses: [good, bad], pairs: [{ chosen: 0, rejected: 1 }] };
  });
}

export async function hostParams(params: Params): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(params)) out[k] = await toHost(v.ref);
  return out;
}

export function assertAllChanged(before: Record<string, Float32Array>, after: Record<string, Float32Array>): void {
  assert.deepEqual(Object.keys(after).sort(), Object.keys(before).sort());
  for (const name of Object.keys(before)) {
    const [a, b] = [before[name]!, after[name]!];
    assert.ok(a.some((x, i) => x !== b[i]), `${name} did not change`);
  }
}

export function assertBitEqual(a: Record<string, Float32Array>, b: Record<string, Float32Array>): void {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  for (const name of Object.keys(a)) {
    const [x, y] = [new Uint32Array(a[name]!.buffer), new Uint32Array(b[name]!.buffer)];
    const bad = x.findIndex((v, i) => v !== y[i]);
    assert.equal(bad, -1, `${name}[${bad}]: ${a[name]![bad]} vs ${b[name]![bad]}`);
  }
}

/**
 * The kill -9 test of a training command. `rlhf ...args(DIR)` runs to the end into one directory,
 * and into another until checkpoint-<killAt> exists, when it is killed with SIGKILL and started
 * again with --resume. The resumed run must end where the uninterrupted one ended, bit for bit:
 * the final weights, the last checkpoint's, and every logged value (timings aside). Returns the
 * resumed run's stderr.
 */
export async function assertResumesAfterKill(dir: string, args: (output: string) => string[], killAt: number): Promise<string> {
  const straight = join(dir, "straight");
  runRlhfOk(args(straight));
  const total = listCheckpoints(straight).at(-1)!.step;

  const killed = join(dir, "killed");
  const child = spawn(process.execPath, [RLHF_BIN, ...args(killed)], { stdio: "ignore" });
  const exit = new Promise<NodeJS.Signals | null>((done) => child.on("exit", (_code, signal) => done(signal)));
  while (!existsSync(join(killed, `checkpoint-${killAt}`))) {
    if (child.exitCode !== null) assert.fail(`rlhf ${args(killed).join(" ")} exited with ${child.exitCode} before checkpoint-${killAt}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  child.kill("SIGKILL");
  assert.equal(await exit, "SIGKILL", "the run finished before it could be killed");
  const last = listCheckpoints(killed).at(-1)!.step;
  assert.ok(last >= killAt && last < total, `killed at checkpoint ${last} of ${total}`);
  assert.ok(!existsSync(join(killed, "config.json")) && !existsSync(join(killed, "adapter_config.json")), "a killed run published a final model");

  const resumed = runRlhfOk([...args(killed), "--resume"]);
  assert.match(resumed.stderr, new RegExp(`resuming from .*checkpoint-${last} \\(step ${last} of ${total}\\)`));
  // A LoRA run's weights are its adapter's.
  const weights = (d: string) => readFileSync(join(d, existsSync(join(d, "adapter_model.safetensors")) ? "adapter_model.safetensors" : "model.safetensors"));
  assert.ok(weights(straight).equals(weights(killed)), "final weights differ");
  assert.ok(weights(join(straight, `checkpoint-${total}`)).equals(weights(join(killed, `checkpoint-${total}`))), "last checkpoints differ");
  const logged = (d: string) =>
    readFileSync(join(d, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => {
      const { train_tokens_per_second: _t, ...record } = JSON.parse(l) as Record<string, number>;
      return record;
    });
  assert.deepEqual(logged(killed), logged(straight));
  return resumed.stderr;
}

/**
 * The names a "Logged…" line of METRICS.md lists under a heading (## or ###) that starts with
 * `heading`: the first such line, or the one starting with `line` (e.g. "Logged with loss_type cispo").
 */
export function documentedMetrics(heading: string, line = "Logged"): string[] {
  const doc = readFileSync(fileURLToPath(new URL("../algorithms/METRICS.md", import.meta.url)), "utf8");
  const section = doc.split(/\n#{2,3} /).find((s) => s.startsWith(heading));
  const found = section?.split("\n").find((l) => l.startsWith(line));
  if (!found) throw new Error(`METRICS.md has no "${line}" line under the heading ${heading}`);
  return [...found.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

/**
 * Asserts that every record an offline run logged holds exactly the names METRICS.md documents:
 * the shared loop's (### rlhf sft, …) with those of the loss's section (`lossSection`: "Reward
 * model", "DPO", "KTO"; none for SFT), or on the held-out split eval_loss, eval_<name> of each
 * of the loss's, and epoch; every record also step.
 */
export function assertLogsDocumented(history: readonly Record<string, number>[], lossSection?: string, optionLine?: string): void {
  const own = lossSection ? [...documentedMetrics(lossSection), ...(optionLine ? documentedMetrics(lossSection, optionLine) : [])] : [];
  const train = [...documentedMetrics("rlhf sft, rlhf rm train"), ...own, "step"].sort();
  const heldOut = ["eval_loss", ...own.map((k) => `eval_${k}`), "epoch", "step"].sort();
  assert.ok(history.some((r) => "loss" in r) && history.some((r) => "eval_loss" in r), "the run logged both kinds of record");
  for (const r of history) assert.deepEqual(Object.keys(r).sort(), "eval_loss" in r ? heldOut : train, "exactly the documented names");
}
