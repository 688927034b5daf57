// A KL reference other than the starting policy (--ref-model, TRL's ref_model): with a reference of
// another architecture (same vocabulary), the first step's objective/kl of PPO and online DPO is
// the mean over the step's samples of Σ_t log π − log π_ref, recomputed here by plain full passes
// of both models over each unpadded sequence; and on the command line a --ref-model that is the
// starting policy itself gives the same run, metric for metric, as none.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initEngine } from "../engine/runtime.ts";
import { fromHost, release, toHost } from "../engine/arrays.ts";
import { logitsOf } from "../models/test-helpers.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { parseConfig } from "../models/config.ts";
import { loadModel, saveModel } from "../models/load.ts";
import { architectureFor, type Architecture } from "../models/architecture.ts";
import { copyParams, initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { logSoftmax } from "../generation/sampling.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { ModuleRewardSource } from "./reward-source.ts";
import { PpoTrainer } from "./ppo-trainer.ts";
import { defaultPpoRunConfig } from "./ppo-config.ts";
import { OnlineDpoTrainer } from "./online-dpo-trainer.ts";
import { defaultOnlineDpoRunConfig } from "./online-dpo-config.ts";
import { onPolicyMemoryPlan } from "./memory-plan.ts";
import { policyModels } from "./policy-models.ts";
import type { LoadedModel } from "../models/load.ts";
import { modelShape } from "../train/memory-plan.ts";
import { peftDefaults, plannedAdapter } from "../train/peft-config.ts";
import { tinyArch, tinyPolicyConfig } from "./test-helpers.ts";

/** Another architecture on the policy's 12-token vocabulary: two narrower layers. */
const referenceArch = architectureFor(
  parseConfig(
    { model_type: "llama", architectures: ["LlamaForCausalLM"], vocab_size: 12, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 32, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2 },
    "tiny reference",
  ),
);

/** A reference far from the near-uniform fresh policy: its output head scaled up, so its next-token distributions are peaked. */
async function sharpReference(seed: number): Promise<Params> {
  const params = initParams(referenceArch, seed);
  const head = params[referenceArch.lmHeadName]!;
  const scaled = (await toHost(head.ref)).map((x) => 30 * x);
  params[referenceArch.lmHeadName] = fromHost(scaled, head.shape);
  release([head]);
  return params;
}

/** Every id is one character, BOS and EOS included, so a completion's text gives back its ids exactly. */
const CHARS = "0123456789ab";
const idChars: Tokenizer = {
  vocabSize: 12,
  bosTokenId: 1,
  eosTokenId: 2,
  padTokenId: 0,
  chatTemplate: null,
  modelMaxLength: null,
  encode: (text, o) => [...(o?.addSpecialTokens === false ? [] : [1]), ...[...text].map((ch) => CHARS.indexOf(ch))],
  decode: (ids) => ids.map((i) => CHARS[i]).join(""),
  save: async () => {},
};
const EOS = 2;
const PROMPTS = ["34", "5", "667", "3a4", "b"];

/** A reward of 0 that keeps the completions the trainer scored. */
function spyReward(): { source: ModuleRewardSource; seen: { prompt: string; completion: string }[] } {
  const seen: { prompt: string; completion: string }[] = [];
  const source = new ModuleRewardSource("spy", (ps, cs) => {
    cs.forEach((c, i) => seen.push({ prompt: ps[i]!, completion: c }));
    return cs.map(() => 0);
  });
  return { source, seen };
}

/** Log-probs at `temperature` of each response token under a full pass over the unpadded sequence. */
async function responseLogprobsOf(arch: Architecture, params: Params, prompt: number[], response: number[], temperature: number): Promise<number[]> {
  const logits = await logitsOf({ arch, params } as LoadedModel, [...prompt, ...response]);
  const v = arch.vocabSize;
  return response.map((id, k) => {
    const at = prompt.length - 1 + k;
    return logSoftmax(logits.subarray(at * v, (at + 1) * v), temperature)[id]!;
  });
}

/** The mean sequence KL (k1) of the scored completions: the sampler's EOS is appended when it stopped before `maxNew` tokens. */
async function directKl(seen: { prompt: string; completion: string }[], policy: Params, reference: Params, maxNew: number, temperature: number): Promise<number> {
  let total = 0;
  for (const { prompt, completion } of seen) {
    const ids = idChars.encode(completion, { addSpecialTokens: false });
    const response = ids.length < maxNew ? [...ids, EOS] : ids;
    const pol = await responseLogprobsOf(tinyArch, policy, idChars.encode(prompt), response, temperature);
    const ref = await responseLogprobsOf(referenceArch, reference, idChars.encode(prompt), response, temperature);
    total += pol.reduce((s, lp, k) => s + lp - ref[k]!, 0);
  }
  return total / seen.length;
}

test("PPO with a reference of its own: step 1's objective/kl is the policy samples' sequence KL against that model", async () => {
  await initEngine();
  const policy = initParams(tinyArch, 3);
  const reference = await sharpReference(9);
  const valueConfig = parseConfig({ ...tinyPolicyConfig, architectures: ["LlamaForSequenceClassification"], num_labels: 1, pad_token_id: 0 }, "tiny value");
  const valueArch = architectureFor(valueConfig);
  const { source, seen } = spyReward();
  const config = { ...defaultPpoRunConfig, batch_size: 8, total_steps: 1, ptx_coef: 0, temperature: 0.7, response_length: 6 };
  const trainer = new PpoTrainer({
    config,
    models: { arch: tinyArch, policy: copyParams(policy), reference, referenceArch, valueConfig, valueArch, value: initParams(valueArch, 4) },
    tokenizer: idChars,
    prompts: PROMPTS,
    reward: source,
    eosIds: [EOS],
  });
  const { metrics } = await trainer.step();
  await trainer.dispose();
  assert.equal(seen.length, 8);
  const expected = await directKl(seen, policy, reference, config.response_length, config.temperature);
  assert.ok(metrics["objective/kl"]! > 0.1, `objective/kl ${metrics["objective/kl"]}`);
  assert.ok(Math.abs(metrics["objective/kl"]! - expected) < 1e-4 * Math.max(1, Math.abs(expected)), `objective/kl ${metrics["objective/kl"]} vs direct ${expected}`);
});

test("online DPO with a reference of its own: step 1's objective/kl is the sampled pairs' sequence KL against that model", async () => {
  await initEngine();
  const policy = initParams(tinyArch, 3);
  const reference = await sharpReference(9);
  const { source, seen } = spyReward();
  const config = { ...defaultOnlineDpoRunConfig, batch_size: 4, total_steps: 1, temperature: 0.9, response_length: 6 };
  const trainer = new OnlineDpoTrainer({ config, models: { arch: tinyArch, policy: copyParams(policy), reference, referenceArch }, tokenizer: idChars, prompts: PROMPTS, reward: source, eosIds: [EOS] });
  const { metrics } = await trainer.step();
  await trainer.dispose();
  assert.equal(seen.length, 8);
  // Online DPO scores the plain model (temperature 1), whatever it samples at.
  const expected = await directKl(seen, policy, reference, config.response_length, 1);
  assert.ok(metrics["objective/kl"]! > 0.1, `objective/kl ${metrics["objective/kl"]}`);
  assert.ok(Math.abs(metrics["objective/kl"]! - expected) < 1e-4 * Math.max(1, Math.abs(expected)), `objective/kl ${metrics["objective/kl"]} vs direct ${expected}`);
});

test("with LoRA, a reference model of its own replaces the adapter-off base as the reference", async () => {
  await initEngine();
  const base = { arch: tinyArch, params: initParams(tinyArch, 3), config: tinyPolicyConfig, path: "tiny" } as unknown as LoadedModel;
  const own = { arch: referenceArch, params: initParams(referenceArch, 9), path: "ref" } as unknown as LoadedModel;
  const fields = { ...peftDefaults, use_peft: true, lora_r: 2, lora_target_modules: ["all-linear"] };
  const adapterOff = policyModels(base, fields, { seed: 1, dropout: false });
  assert.equal(adapterOff.reference, base.params);
  assert.equal(adapterOff.referenceArch, undefined);
  const withOwn = policyModels(base, fields, { seed: 1, dropout: false }, own);
  assert.equal(withOwn.reference, own.params);
  assert.equal(withOwn.referenceArch, referenceArch);
  assert.equal(withOwn.frozen, base.params, "the adapter still trains on the policy's frozen weights");
});

test("the memory plan holds --ref-model's own weights as the reference, also beside a LoRA adapter (which otherwise reads the base)", () => {
  const shape = { policy: tinyArch, rewardModels: [], rolloutRows: 4, promptLength: 8, responseLength: 7, updateRows: 2 };
  const referenceBytes = (plan: ReturnType<typeof onPolicyMemoryPlan>) => plan.items.filter((i) => i.what === "reference weights").map((i) => i.bytes);
  const own = modelShape(referenceArch).params * 4;
  assert.notEqual(own, modelShape(tinyArch).params * 4);
  assert.deepEqual(referenceBytes(onPolicyMemoryPlan({ ...shape, reference: true })), [modelShape(tinyArch).params * 4]);
  assert.deepEqual(referenceBytes(onPolicyMemoryPlan({ ...shape, reference: true, referenceModel: referenceArch })), [own]);
  const adapter = plannedAdapter(tinyArch, { ...peftDefaults, use_peft: true, lora_r: 2, lora_target_modules: ["all-linear"] }, "CAUSAL_LM", false);
  assert.deepEqual(referenceBytes(onPolicyMemoryPlan({ ...shape, adapter, reference: true })), []);
  assert.deepEqual(referenceBytes(onPolicyMemoryPlan({ ...shape, adapter, reference: true, referenceModel: referenceArch })), [own]);
});

const bin = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));

for (const command of ["ppo", "online-dpo"]) {
  test(`rlhf ${command} --ref-model naming the starting policy runs exactly as without it`, { timeout: 120_000 }, async () => {
    const dir = await tempDir();
    const policy = sharedData("llama2c/stories260K.bin");
    await writeFile(join(dir, "reward.mjs"), 'export function reward(p, cs) { return cs.map((c) => (c.match(/\\b(happy|fun|play|friends)\\b/g) ?? []).length); }\n');
    await writeFile(join(dir, "prompts.jsonl"), ["Once upon a time there", "Tom and Lily went to"].map((p) => JSON.stringify({ prompt: p })).join("\n") + "\n");
    const args = [bin, command, "--policy", policy, "--reward", join(dir, "reward.mjs"), "--prompts", join(dir, "prompts.jsonl"), "--total_steps", "2", "--batch_size", "2", "--response_length", "8", "--learning_rate", "1e-3"];
    const metrics = async (out: string, extra: string[]) => {
      const r = spawnSync(process.execPath, [...args, "--output", join(dir, out), ...extra], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return (await readFile(join(dir, out, "metrics.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    };
    const without = await metrics("without", []);
    const withRef = await metrics("with", ["--ref-model", policy]);
    assert.equal(without.length, 2);
    assert.deepEqual(withRef, without);
    // A resume with another reference says so: the run will differ from an uninterrupted one.
    const other = join(dir, "other-reference");
    await saveModel(other, (await loadModel(policy)).config, (await loadModel(policy)).params);
    const resumed = spawnSync(process.execPath, [...args, "--output", join(dir, "with"), "--resume", "--total_steps", "3", "--ref-model", other], { encoding: "utf8" });
    assert.equal(resumed.status, 0, resumed.stderr);
    const note = `config changed since the checkpoint (total_steps 2 → 3, ref_model ${policy} → ${other})`;
    assert.ok(resumed.stderr.includes(note), resumed.stderr);
  });
}

test("--ref-model of another vocabulary is refused in one line naming the flag", { timeout: 60_000 }, async () => {
  const dir = await tempDir();
  await writeFile(join(dir, "reward.mjs"), "export function reward(p, cs) { return cs.map(() => 0); }\n");
  await writeFile(join(dir, "prompts.txt"), "Once upon a time\n");
  const modelDir = join(dir, "other");
  await initEngine();
  const other = parseConfig({ model_type: "llama", architectures: ["LlamaForCausalLM"], vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 256, bos_token_id: 1, eos_token_id: 2 }, "other vocab");
  await saveModel(modelDir, other, initParams(architectureFor(other), 1));
  const r = spawnSync(process.execPath, [bin, "ppo", "--policy", sharedData("llama2c/stories260K.bin"), "--ref-model", modelDir, "--reward", join(dir, "reward.mjs"), "--prompts", join(dir, "prompts.txt"), "--output", join(dir, "out")], { encoding: "utf8" });
  assert.notEqual(r.status, 0);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /--ref-model .* vocabulary of 40 tokens, the policy 512; they must share the tokenizer/);
});
