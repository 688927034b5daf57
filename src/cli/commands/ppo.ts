import { mkdir, appendFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "../command.ts";
import { parseFlags, requireFlag, requireRepeated, UsageError } from "../command.ts";
import { configFlags, configOverrides, normaliseFlagNames, onPolicyRunSpecs, resolveConfig, type FieldSpec, type OnPolicyRunFields } from "../../train/config.ts";
import { MetricsLog } from "../../train/metrics-log.ts";
import { Progress } from "../../train/progress.ts";
import { describeModel, loadModel, resolveTokenizer, saveModel } from "../../models/load.ts";
import { checkPlan, formatPlan, memoryReport } from "../../train/memory-plan.ts";
import { onPolicyMemoryPlan } from "../../rl/memory-plan.ts";
import { encodePrompts } from "../../rl/rollout.ts";
import { architectureFor } from "../../models/architecture.ts";
import { isSequenceClassifier } from "../../models/config.ts";
import { copyParams } from "../../models/params.ts";
import { eosIdsOf } from "../../generation/eos.ts";
import { defaultPPOConfig } from "../../algorithms/ppo.ts";
import { loadRewardSource } from "../../rl/reward-source.ts";
import { readPromptFile, promptText } from "../../rl/prompts.ts";
import { PpoTrainer, type PpoRunConfig } from "../../rl/ppo-trainer.ts";
import { latestPpoCheckpoint, loadPpoCheckpoint, PPO_STATE, savePpoCheckpoint } from "../../rl/ppo-checkpoint.ts";
import { pruneCheckpoints } from "../../train/checkpoint.ts";
import { rewardModelFromCausalLm } from "../../train/reward.ts";
import { readSftData } from "../../train/datasets.ts";

export const defaultPpoRunConfig: PpoRunConfig & OnPolicyRunFields = {
  ...defaultPPOConfig,
  batch_size: 8,
  total_steps: 100,
  max_grad_norm: 1,
  weight_decay: 0,
  lr_scheduler_type: "linear",
  seed: 0,
  target_kl: null,
  kl_horizon: 10000,
  top_k: 0,
  top_p: 1,
  // Used only with --ptx-data. InstructGPT's γ was 27.8 under its own loss normalisation; 1 weighs
  // the mean token loss like the policy loss.
  ptx_coef: 1,
  save_steps: 25,
  save_total_limit: null,
  logging_steps: 1,
  sample_steps: 10,
};

const specs: Record<string, FieldSpec> = {
  learning_rate: { kind: "number", min: 0, help: "peak learning rate (annealed linearly by default)" },
  batch_size: { kind: "int", min: 1, help: "prompts per rollout" },
  total_steps: { kind: "int", min: 1, help: "PPO iterations (rollout + updates)" },
  num_ppo_epochs: { kind: "int", min: 1, help: "passes over each rollout" },
  num_mini_batches: { kind: "int", min: 1, help: "mini-batches per pass" },
  cliprange: { kind: "number", min: 0, help: "policy ratio clip ε" },
  cliprange_value: { kind: "number", min: 0, help: "value clip ε_v" },
  vf_coef: { kind: "number", min: 0, help: "value loss weight" },
  gamma: { kind: "number", min: 0, max: 1, help: "GAE discount" },
  lam: { kind: "number", min: 0, max: 1, help: "GAE λ" },
  kl_coef: { kind: "number", min: 0, help: "KL penalty weight (initial value when target_kl is set)" },
  kl_estimator: { kind: "choice", choices: ["k1", "k3"], help: "per-token KL estimator in the reward" },
  target_kl: { kind: "number", min: 0, nullable: true, help: "adaptive KL control: target KL per response" },
  kl_horizon: { kind: "int", min: 1, help: "adaptive KL control horizon (samples)" },
  whiten_rewards: { kind: "bool", help: "whiten per-token rewards before GAE" },
  missing_eos_penalty: { kind: "number", nullable: true, help: "subtracted from the score of responses without EOS" },
  temperature: { kind: "number", min: 0, help: "sampling temperature of rollouts" },
  response_length: { kind: "int", min: 1, help: "max new tokens per response" },
  ptx_coef: { kind: "number", min: 0, help: "PPO-ptx: weight γ of the LM loss on --ptx-data (needs --ptx-data)" },
  ...onPolicyRunSpecs,
};

const usage = `Usage: rlhf ppo --policy PATH --reward SRC --prompts FILE --output DIR [options]

PPO with a KL penalty to the frozen starting policy (InstructGPT / TRL's PPOTrainer). The value
model starts from the first reward-model directory in --reward (as TRL does), or from the policy's
backbone with a fresh head (--value-model to choose another). Metrics go to DIR/metrics.jsonl
under TRL's names, sample completions to DIR/samples.jsonl, checkpoints to DIR/checkpoint-N
(resumable with --resume), and the final policy to DIR (a Hugging Face directory).
With --ptx-data, each update also takes ptx_coef × the next-token loss on that data (InstructGPT's
PPO-ptx), logged as loss/ptx_avg.
Config fields can come from --config FILE (JSON/YAML) and be overridden by flags (--kl_coef or --kl-coef).`;

const flags = {
  policy: { type: "string", help: "starting (SFT) policy: llama2.c .bin or HF directory <PATH>" },
  reward: { type: "string", multiple: true, help: "reward source: RM directory or .mjs/.ts module, PATH@WEIGHT to weight (repeatable) <SRC>" },
  prompts: { type: "string", help: "JSON lines with a prompt field, or .txt lines <FILE>" },
  output: { type: "string", help: "output directory <DIR>" },
  tokenizer: { type: "string", help: "policy tokenizer <PATH> (default: found with the policy)" },
  "value-model": { type: "string", help: "initialise the value model from this RM directory <PATH>" },
  "ptx-data": { type: "string", help: "PPO-ptx: SFT or pretraining data (TRL formats) whose LM loss is mixed into every update <FILE>" },
  config: { type: "string", help: "JSON/YAML file of config fields <FILE>" },
  resume: { type: "boolean", help: "continue from the latest checkpoint in DIR" },
  "dry-run": { type: "boolean", help: "print the engine memory plan for this run and exit" },
  ...configFlags(specs, defaultPpoRunConfig),
} as const;

export const command: Command = {
  summary: "optimise a policy against a reward with PPO and a KL leash (resumable)",
  async run(argv) {
    const parsed = parseFlags(normaliseFlagNames(argv, specs), usage, flags);
    if (!parsed) return 0;
    const v = parsed.values as Record<string, unknown>;
    const output = requireFlag(v.output as string | undefined, "output");
    const rewardSpecs = requireRepeated(v.reward as string[] | undefined, "reward");
    const config = resolveConfig(defaultPpoRunConfig as never, specs as never, {
      ...(v.config ? { file: v.config as string } : {}),
      overrides: configOverrides(v, specs),
    }) as unknown as typeof defaultPpoRunConfig;

    const policyPath = requireFlag(v.policy as string | undefined, "policy");
    const described = await describeModel(policyPath);
    const tokenizer = await resolveTokenizer(described, v.tokenizer as string | undefined);
    const prompts = (await readPromptFile(requireFlag(v.prompts as string | undefined, "prompts"))).map((p) => promptText(p, tokenizer));
    const eosIds = eosIdsOf(described, tokenizer);
    if (eosIds.length === 0) throw new UsageError("the policy has no EOS token id (config eos_token_id or tokenizer)");
    const ptxPath = v["ptx-data"] as string | undefined;
    if (!ptxPath) config.ptx_coef = 0;
    const ptx = ptxPath && config.ptx_coef > 0 ? { examples: readSftData(ptxPath, tokenizer), padId: tokenizer.padTokenId ?? eosIds[0]! } : undefined;
    const rewardDirs = rewardSpecs.map((s) => s.replace(/@[^@/]*$/, "")).filter((p) => existsSync(join(p, "config.json")));
    const valueSource = (v["value-model"] as string | undefined) ?? rewardDirs[0];
    const updateRows = Math.max(1, Math.floor(config.batch_size / config.num_mini_batches));
    const promptLength = encodePrompts(tokenizer, prompts, described.arch.maxPositions, config.response_length).promptLength;
    const memory = onPolicyMemoryPlan({
      policy: described.arch,
      value: valueSource ? (await describeModel(valueSource)).arch : described.arch,
      reference: true,
      rewardModels: await Promise.all(rewardDirs.map(async (p) => (await describeModel(p)).arch)),
      rolloutRows: config.batch_size,
      promptLength,
      responseLength: config.response_length + 1,
      updateRows,
      ...(ptx ? { ptx: { rows: updateRows, length: Math.min(described.arch.maxPositions, promptLength + config.response_length + 1) } } : {}),
    });
    if (v["dry-run"]) {
      process.stdout.write(formatPlan(memory));
      return 0;
    }
    checkPlan(memory, `lower batch_size (now ${config.batch_size}) or response_length (now ${config.response_length}), or raise num_mini_batches (now ${config.num_mini_batches}) so that each update holds fewer rows`);
    const policyModel = await loadModel(policyPath);
    const reward = await loadRewardSource(rewardSpecs);
    await mkdir(output, { recursive: true });
    const log = new MetricsLog(output);

    const checkpoint = v.resume ? latestPpoCheckpoint(output) : null;
    if (v.resume && !checkpoint) process.stderr.write(`ppo: no checkpoint in ${output}; starting from the beginning\n`);
    let trainer: PpoTrainer;
    let valueConfig;
    // The starting policy's weights are only ever read from here on: they are the reference.
    const reference = policyModel.params;
    if (checkpoint) {
      const saved = await loadPpoCheckpoint(checkpoint);
      valueConfig = saved.value.config;
      trainer = new PpoTrainer({
        config,
        models: { arch: policyModel.arch, policy: saved.policy.params, reference, valueArch: saved.value.arch, value: saved.value.params },
        tokenizer,
        prompts,
        reward,
        eosIds,
        ...(ptx ? { ptx } : {}),
        resume: { progress: saved.state.progress, optimizer: saved.optimizer },
      });
      log.truncateAfter(saved.state.progress.step);
      process.stderr.write(`ppo: resumed from ${checkpoint} (step ${saved.state.progress.step})\n`);
    } else {
      let value;
      if (valueSource) {
        const rm = await loadModel(valueSource);
        if (!isSequenceClassifier(rm.config)) throw new UsageError(`${valueSource} is not a reward model (sequence classifier)`);
        value = { config: rm.config, arch: architectureFor(rm.config), params: rm.params };
      } else {
        // A fresh scalar head on a copy of the policy's backbone (the function consumes what it is given).
        value = rewardModelFromCausalLm({ ...policyModel, params: copyParams(policyModel.params) }, { seed: config.seed, padTokenId: tokenizer.padTokenId ?? eosIds[0]! });
      }
      valueConfig = value.config;
      trainer = new PpoTrainer({
        config,
        models: { arch: policyModel.arch, policy: copyParams(policyModel.params), reference, valueArch: value.arch, value: value.params },
        tokenizer,
        prompts,
        reward,
        eosIds,
        ...(ptx ? { ptx } : {}),
      });
    }

    const progress = new Progress(config.total_steps, { firstStep: trainer.progress.step });
    const started = performance.now();
    let tokens = 0;
    while (trainer.progress.step < config.total_steps) {
      const { metrics, samples } = await trainer.step();
      const step = trainer.progress.step;
      tokens += (metrics["response_length"] ?? 0) * config.batch_size;
      progress.tick({ step, loss: metrics["loss/policy_avg"] ?? NaN, tokensPerSecond: tokens / ((performance.now() - started) / 1000), learningRate: metrics["lr"] ?? 0 });
      if (step % config.logging_steps === 0 || step === config.total_steps) {
        log.append({ step, ...metrics });
        progress.line(`step ${step}: score ${fmt(metrics["objective/scores"])} kl ${fmt(metrics["objective/kl"])} rlhf_reward ${fmt(metrics["objective/rlhf_reward"])} len ${fmt(metrics["response_length"])}`);
      }
      if (step % config.sample_steps === 0 || step === 1) {
        await appendFile(join(output, "samples.jsonl"), samples.slice(0, 4).map((s) => JSON.stringify({ step, ...s }) + "\n").join(""));
      }
      if (step % config.save_steps === 0 || step === config.total_steps) {
        await savePpoCheckpoint(output, {
          policyConfig: policyModel.config,
          policy: trainer.policy,
          valueConfig,
          value: trainer.value,
          optimizer: trainer.optimizerState,
          state: { progress: trainer.progress, config: config as unknown as Record<string, unknown>, logged_steps: step },
          tokenizer,
        });
        await pruneCheckpoints(output, config.save_total_limit, PPO_STATE);
      }
    }
    await saveModel(join(output, "policy"), policyModel.config, trainer.policy, { tokenizer, ...(policyModel.generationConfig ? { generationConfig: policyModel.generationConfig } : {}) });
    await writeFile(join(output, "ppo_config.json"), JSON.stringify(config, null, 2) + "\n");
    progress.line(`ppo: done; final policy in ${join(output, "policy")}`);
    progress.line(`ppo: ${memoryReport(memory)}`);
    trainer.dispose();
    reward.dispose();
    return 0;
  },
};

function fmt(x: number | undefined): string {
  return x === undefined ? "-" : x.toFixed(3);
}
