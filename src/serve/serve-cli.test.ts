// The `rlhf serve` command itself: a Hugging Face model (tinystories-656k) with a LoRA adapter given
// by --adapter serves what `rlhf generate` writes for that adapter, on either engine, and SIGTERM
// stops it cleanly.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, test } from "node:test";
import OpenAI from "openai";
import { fromHost, release } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import { disposeModel, loadModel, saveAdapter } from "../models/load.ts";
import { initAdapter, resolveTargetModules, type LoraConfig } from "../models/lora.ts";
import { RLHF_BIN, runRlhf, runRlhfOk } from "../cli/test-helpers.ts";

const BASE = resolve("../shared/data/tinystories-656k");
const dir = mkdtempSync(join(tmpdir(), "serve-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An all-linear adapter with random B (B = 0 would serve the base unchanged). */
async function writeAdapter(path: string): Promise<void> {
  const model = await loadModel(BASE);
  const lora: LoraConfig = {
    task_type: "CAUSAL_LM", r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: resolveTargetModules(model.arch, ["all-linear"]),
    modules_to_save: null, fan_in_fan_out: false, use_rslora: false, base_model_name_or_path: BASE,
  };
  const adapter = initAdapter(model.arch, lora, model.params, 1);
  const rng = new HostRng(2);
  for (const [name, p] of Object.entries(adapter)) {
    if (name.includes("lora_B")) {
      p.dispose();
      adapter[name] = fromHost(Float32Array.from({ length: p.size }, () => 0.5 * rng.normal()), p.shape);
    }
  }
  await saveAdapter(path, lora, adapter);
  release(adapter);
  disposeModel(model);
}

/** Starts `rlhf serve ARGS --port 0 --api-key k`, asks for 24 greedy tokens, stops it with SIGTERM; the text. */
async function serveGreedy(args: string[]): Promise<string> {
  const child = spawn(process.execPath, [RLHF_BIN, "serve", ...args, "--port", "0", "--api-key", "k"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const url = await new Promise<string>((found, failed) => {
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      const m = /serving adapter at (http:\S+)/.exec(stderr);
      if (m) found(m[1]!);
    });
    child.once("exit", (code) => failed(new Error(`rlhf serve exited ${code}: ${stderr}`)));
  });
  let text: string;
  try {
    const client = new OpenAI({ baseURL: url, apiKey: "k", maxRetries: 0 });
    text = (await client.completions.create({ model: "adapter", prompt: "Once upon a time", max_tokens: 24, temperature: 0 })).choices[0]!.text;
  } finally {
    child.kill("SIGTERM");
  }
  const code = await new Promise((done) => child.once("exit", done));
  assert.equal(code, 0, stderr);
  return text;
}

test("rlhf serve --model HF_DIR --adapter DIR serves the adapter's greedy text on jax-js and on llama.cpp, and stops on SIGTERM", async () => {
  const adapter = join(dir, "adapter");
  await writeAdapter(adapter);
  const generated = JSON.parse(runRlhfOk(["generate", "--model", adapter, "--prompt", "Once upon a time", "--max-new-tokens", "24", "--temperature", "0", "--json"]).stdout);
  const plain = JSON.parse(runRlhfOk(["generate", "--model", BASE, "--prompt", "Once upon a time", "--max-new-tokens", "24", "--temperature", "0", "--json"]).stdout);
  assert.notEqual(generated.text, plain.text, "the adapter should change the greedy text");
  assert.equal(await serveGreedy(["--model", BASE, "--adapter", adapter]), generated.text);
  // The adapter is merged before the export: llama.cpp serves the adapted model.
  assert.equal(await serveGreedy(["--model", BASE, "--adapter", adapter, "--rollout_engine", "llama.cpp", "--threads", "1"]), generated.text);
});

test("rlhf serve refuses an unknown engine, and --threads without llama.cpp", () => {
  const refused = (args: string[], message: RegExp) => {
    const r = runRlhf(["serve", "--model", BASE, ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
  };
  refused(["--rollout_engine", "vllm"], /--rollout_engine: expected one of jax-js, llama\.cpp, got "vllm"/);
  refused(["--threads", "2"], /--threads is llama\.cpp's/);
});
