// The `rlhf serve` command itself: a Hugging Face model (tinystories-656k) with a LoRA adapter given
// by --adapter serves what `rlhf generate` writes for that adapter, and SIGTERM stops it cleanly.
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
import { RLHF_BIN, runRlhfOk } from "../cli/test-helpers.ts";

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

test("rlhf serve --model HF_DIR --adapter DIR serves the adapter's greedy text, and stops on SIGTERM", async () => {
  const adapter = join(dir, "adapter");
  await writeAdapter(adapter);
  const generated = JSON.parse(runRlhfOk(["generate", "--model", adapter, "--prompt", "Once upon a time", "--max-new-tokens", "24", "--temperature", "0", "--json"]).stdout);
  const plain = JSON.parse(runRlhfOk(["generate", "--model", BASE, "--prompt", "Once upon a time", "--max-new-tokens", "24", "--temperature", "0", "--json"]).stdout);
  assert.notEqual(generated.text, plain.text, "the adapter should change the greedy text");

  const child = spawn(process.execPath, [RLHF_BIN, "serve", "--model", BASE, "--adapter", adapter, "--port", "0", "--api-key", "k"], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const url = await new Promise<string>((found, failed) => {
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      const m = /serving adapter at (http:\S+)/.exec(stderr);
      if (m) found(m[1]!);
    });
    child.once("exit", (code) => failed(new Error(`rlhf serve exited ${code}: ${stderr}`)));
  });
  try {
    const client = new OpenAI({ baseURL: url, apiKey: "k", maxRetries: 0 });
    const r = await client.completions.create({ model: "adapter", prompt: "Once upon a time", max_tokens: 24, temperature: 0 });
    assert.equal(r.choices[0]!.text, generated.text);
  } finally {
    child.kill("SIGTERM");
  }
  const code = await new Promise((done) => child.once("exit", done));
  assert.equal(code, 0, stderr);
});
