// `rlhf grpo` (and, through groupCommand, `rlhf rloo`): the critic-free trainers of
// src/rl/group-trainer.ts with TRL's config fields, metrics.jsonl, samples.jsonl and resumable
// checkpoints, laid out like `rlhf ppo`.
import { existsSync } from "node:fs";
import { appendFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "../command.ts";
import { parseFlags, requireFlag, requireRepeated, UsageError } from "../command.ts";
import { configFlags, configOverrides, type FieldSpec, normaliseFlagNames, onPolicyRunSpecs, type OnPolicyRunFields, resolveConfig } from "../../train/config.ts";
import { MetricsLog } from "../../train/metrics-log.ts";
import { Progress } from "../../train/progress.ts";
import { describeModel, loadModel, resolveTokenizer, saveModel } from "../../models/load.ts";
import { checkPlan, formatPlan, memoryReport } from "../../train/memory-plan.ts";
import { onPolicyMemoryPlan } from "../../rl/memory-plan.ts";
import { encodePrompts } from "../../rl/rollout.ts";
import { isSequenceClassifier } from "../../models/config.ts";
import { copyParams } from "../../models/params.ts";
import { eosIdsOf } from "../../generation/eos.ts";
import { defaultGRPOConfig } from "../../algorithms/group-advantages.ts";
import { loadRewardSource } from "../../rl/reward-source.ts";
import { readPromptFile, promptText } from "../../rl/prompts.ts";
import { GroupTrainer, grpo, type GroupAlgorithm, type GroupRunConfig } from "../../rl/group-trainer.ts";
import { GROUP_STATE, latestGroupCheckpoint, loadGroupCheckpoint, promptsFingerprint, saveGroupCheckpoint } from "../../rl/group-checkpoint.ts";
import { pruneCheckpoints } from "../../train/checkpoint.ts";

type GroupCommandConfig = GroupRunConfig & OnPolicyRunFields;

const runDefaults = {
  batch_size: 8,
  total_steps: 100,
  gradient_accumulation_steps: 1,
  max_grad_norm: 1,
  weight_decay: 0,
  lr_scheduler_type: "linear" as const,
  seed: 0,
  top_k: 0,
  top_p: 1,
  normalize_advantages: false,
  // Small models, short completions: TRL's 256 would mostly be padding.
  max_completion_length: 64,
  save_steps: 25,
  save_total_limit: null,
  logging_steps: 1,
  sample_steps: 10,
};

/** TRL's GRPOConfig defaults, except beta: DeepSeekMath's 0.04 (TRL's default until 0.19), so the KL leash is on. */
export const defaultGrpoCommandConfig: GroupCommandConfig = { ...defaultGRPOConfig, ...runDefaults, beta: 0.04 };
/** TRL's RLOOConfig defaults: two completions per prompt, β = 0.05 in the reward. */
export const defaultRlooCommandConfig: GroupCommandConfig = { ...defaultGRPOConfig, ...runDefaults, num_generations: 2, beta: 0.05 };

function specsFor(algorithm: GroupAlgorithm): Record<string, FieldSpec> {
  const specs: Record<string, FieldSpec> = {
    learning_rate: { kind: "number", min: 0, help: "peak learning rate (annealed linearly by default)" },
    batch_size: { kind: "int", min: 1, help: "prompts per step (each gets num_generations completions)" },
    num_generations: { kind: "int", min: 2, help: "completions per prompt (G)" },
    total_steps: { kind: "int", min: 1, help: "steps (generation + num_iterations updates)" },
    num_iterations: { kind: "int", min: 1, help: "optimizer updates per generated batch (μ)" },
    gradient_accumulation_steps: { kind: "int", min: 1, help: "micro-batches per update (must divide batch_size × num_generations)" },
    beta:
      algorithm.name === "grpo"
        ? { kind: "number", min: 0, help: "weight of the per-token k3 KL penalty in the loss" }
        : { kind: "number", min: 0, help: "weight of the sequence KL subtracted from each score" },
    ...(algorithm.name === "grpo"
      ? {
          epsilon: { kind: "number", min: 0, help: "clip range ε of the per-token ratio" } as FieldSpec,
          loss_type: { kind: "choice", choices: ["grpo", "bnpo", "dapo", "dr_grpo"], help: "how per-token losses are averaged: grpo (per completion, then over completions), bnpo/dapo (over all tokens), dr_grpo (sum / constant)" } as FieldSpec,
          scale_rewards: { kind: "choice", choices: ["group", "batch", "none"], help: "divide centred rewards by the group's std (group), the batch's (batch), or nothing (none)" } as FieldSpec,
        }
      : {
          epsilon: { kind: "number", min: 0, help: "clip range ε of each completion's ratio" } as FieldSpec,
          normalize_advantages: { kind: "bool", help: "normalise the batch's advantages to mean 0, std 1" } as FieldSpec,
        }),
    temperature: { kind: "number", min: 0, help: "sampling temperature (log-probs use the same)" },
    max_completion_length: { kind: "int", min: 1, help: "max new tokens per completion" },
    ...onPolicyRunSpecs,
  };
  return specs;
}

const descriptions = {
  grpo: `GRPO (DeepSeekMath; TRL's GRPOTrainer): num_generations completions per prompt, advantages are
scores normalised within each prompt's group, no value model; a per-token k3 KL penalty (beta)
keeps the policy near the frozen starting policy.`,
  rloo: `RLOO (Ahmadian et al. 2024; TRL's RLOOTrainer): num_generations completions per prompt, each
completion's reward is its score minus beta × its sequence KL to the frozen starting policy, and
its advantage is that reward minus the mean of the others' in its group; no value model. A
completion is one action: its log-probability is the sum over its tokens, and one ratio per
completion is clipped (epsilon).`,
};

export function groupCommand(algorithm: GroupAlgorithm, defaults: GroupCommandConfig): Command {
  const name = algorithm.name;
  const specs = specsFor(algorithm);
  const usage = `Usage: rlhf ${name} --policy PATH --reward SRC --prompts FILE --output DIR [options]

${descriptions[name]}
The reward is a reward-model directory (a sequence classifier) or a .mjs/.ts module exporting
\`reward(prompts, completions)\` that returns one number per completion; several --reward flags
are summed (PATH@WEIGHT weights one).
Metrics go to DIR/metrics.jsonl under TRL's names, sample completions to DIR/samples.jsonl,
checkpoints to DIR/checkpoint-N (resumable with --resume), and the final policy to DIR/policy (a
Hugging Face directory). Config fields can come from --config FILE (JSON/YAML) and be overridden
by flags (--num_generations or --num-generations).`;
  const flags = {
    policy: { type: "string", help: "starting policy: llama2.c .bin or HF directory <PATH>" },
    reward: { type: "string", multiple: true, help: "reward source: RM directory or .mjs/.ts module, PATH@WEIGHT to weight (repeatable) <SRC>" },
    prompts: { type: "string", help: "JSON lines with a prompt field, or .txt lines <FILE>" },
    output: { type: "string", help: "output directory <DIR>" },
    tokenizer: { type: "string", help: "policy tokenizer <PATH> (default: found with the policy)" },
    config: { type: "string", help: "JSON/YAML file of config fields <FILE>" },
    resume: { type: "boolean", help: "continue from the latest checkpoint in DIR" },
    "dry-run": { type: "boolean", help: "print the engine memory plan for this run and exit" },
    ...configFlags(specs, defaults),
  } as const;

  return {
    summary: `optimise a policy against a reward with ${name.toUpperCase()} (groups of completions, no value model; resumable)`,
    async run(argv) {
      const parsed = parseFlags(normaliseFlagNames(argv, specs), usage, flags);
      if (!parsed) return 0;
      const v = parsed.values as Record<string, unknown>;
      const output = requireFlag(v.output as string | undefined, "output");
      // A fresh run would leave the old run's later checkpoints behind for a --resume to pick up.
      const existing = v.resume ? null : latestGroupCheckpoint(output);
      if (existing) throw new UsageError(`${output} already holds a run (${existing}); pass --resume to continue it, or choose another --output`);
      const rewardSpecs = requireRepeated(v.reward as string[] | undefined, "reward");
      const config = resolveConfig(defaults as never, specs as never, {
        ...(v.config ? { file: v.config as string } : {}),
        overrides: configOverrides(v, specs),
      }) as unknown as GroupCommandConfig;
      if ((config.batch_size * config.num_generations) % config.gradient_accumulation_steps !== 0) {
        throw new UsageError(`gradient_accumulation_steps (${config.gradient_accumulation_steps}) must divide batch_size × num_generations (${config.batch_size * config.num_generations})`);
      }

      const policyPath = requireFlag(v.policy as string | undefined, "policy");
      const described = await describeModel(policyPath);
      if (isSequenceClassifier(described.config)) throw new UsageError(`${policyPath} is a sequence classifier; ${name} needs a causal LM policy`);
      if (config.max_completion_length + 2 > described.arch.maxPositions) {
        throw new UsageError(`max_completion_length ${config.max_completion_length} leaves no room for a prompt in the policy's context of ${described.arch.maxPositions} tokens`);
      }
      const tokenizer = await resolveTokenizer(described, v.tokenizer as string | undefined);
      const prompts = (await readPromptFile(requireFlag(v.prompts as string | undefined, "prompts"))).map((p) => promptText(p, tokenizer));
      const eosIds = eosIdsOf(described, tokenizer);
      if (eosIds.length === 0) throw new UsageError("the policy has no EOS token id (config eos_token_id or tokenizer)");
      const completions = config.batch_size * config.num_generations;
      const rewardDirs = rewardSpecs.map((s) => s.replace(/@[^@/]*$/, "")).filter((p) => existsSync(join(p, "config.json")));
      const memory = onPolicyMemoryPlan({
        policy: described.arch,
        reference: true,
        rewardModels: await Promise.all(rewardDirs.map(async (p) => (await describeModel(p)).arch)),
        rolloutRows: completions,
        promptLength: encodePrompts(tokenizer, prompts, described.arch.maxPositions, config.max_completion_length).promptLength,
        responseLength: config.max_completion_length + 1,
        updateRows: completions / config.gradient_accumulation_steps,
      });
      if (v["dry-run"]) {
        process.stdout.write(formatPlan(memory));
        return 0;
      }
      checkPlan(memory, `lower batch_size (now ${config.batch_size}), num_generations (now ${config.num_generations}) or max_completion_length (now ${config.max_completion_length}), or raise gradient_accumulation_steps (now ${config.gradient_accumulation_steps})`);
      const policyModel = await loadModel(policyPath);
      const reward = await loadRewardSource(rewardSpecs);
      await mkdir(output, { recursive: true });
      const log = new MetricsLog(output);
      const samplesPath = join(output, "samples.jsonl");
      const fingerprint = promptsFingerprint(prompts);

      const checkpoint = v.resume ? latestGroupCheckpoint(output) : null;
      if (v.resume && !checkpoint) process.stderr.write(`${name}: no checkpoint in ${output}; starting from the beginning\n`);
      // The reference is always the starting policy, also when resuming; the trainer only reads it.
      const reference = policyModel.params;
      const common = { algorithm, config, tokenizer, prompts, reward, eosIds };
      let trainer: GroupTrainer;
      if (checkpoint) {
        const saved = await loadGroupCheckpoint(checkpoint, { algorithm: name, config: config as unknown as Record<string, unknown>, promptsFingerprint: fingerprint });
        const step = saved.state.progress.step;
        trainer = new GroupTrainer({ ...common, models: { arch: policyModel.arch, policy: saved.policy.params, reference }, resume: { progress: saved.state.progress, optimizer: saved.optimizer } });
        // Lines from steps after the checkpoint were written by the run that stopped; they are redone.
        log.truncateAfter(step);
        await truncateJsonl(samplesPath, step);
        process.stderr.write(`${name}: resumed from ${checkpoint} (step ${step} of ${config.total_steps})\n`);
        if (saved.changed.length > 0) process.stderr.write(`${name}: config changed since the checkpoint (${saved.changed.join(", ")}); the run will differ from an uninterrupted one\n`);
      } else {
        // A fresh run starts fresh logs (as rlhf sft does).
        await rm(log.path, { force: true });
        await rm(samplesPath, { force: true });
        trainer = new GroupTrainer({ ...common, models: { arch: policyModel.arch, policy: copyParams(policyModel.params), reference } });
      }
      process.stderr.write(`${name}: ${prompts.length} prompts, ${config.batch_size} × ${config.num_generations} completions per step, reward ${reward.name}\n`);

      const progress = new Progress(config.total_steps, { firstStep: trainer.progress.step });
      const started = performance.now();
      let tokens = 0;
      while (trainer.progress.step < config.total_steps) {
        const { metrics, samples } = await trainer.step();
        const step = trainer.progress.step;
        tokens += (metrics["completions/mean_length"] ?? 0) * config.batch_size * config.num_generations;
        progress.tick({ step, loss: metrics.loss ?? NaN, tokensPerSecond: tokens / ((performance.now() - started) / 1000), learningRate: metrics.learning_rate ?? 0 });
        if (step % config.logging_steps === 0 || step === config.total_steps) {
          log.append({ step, ...metrics });
          progress.line(`step ${step}: reward ${fmt(metrics.reward)} ± ${fmt(metrics.reward_std)} kl ${fmt(metrics["objective/kl"])} len ${fmt(metrics["completions/mean_length"])} loss ${fmt(metrics.loss)}`);
        }
        if (step % config.sample_steps === 0 || step === 1) {
          await appendFile(samplesPath, samples.slice(0, 4).map((s) => JSON.stringify({ step, ...s }) + "\n").join(""));
        }
        if (step % config.save_steps === 0 || step === config.total_steps) {
          await saveGroupCheckpoint(output, {
            modelConfig: policyModel.config,
            policy: trainer.policy,
            optimizer: trainer.optimizerState,
            state: { algorithm: name, progress: trainer.progress, config: config as unknown as Record<string, unknown>, prompts_fingerprint: fingerprint },
            tokenizer,
          });
          await pruneCheckpoints(output, config.save_total_limit, GROUP_STATE);
        }
      }
      progress.finish();
      await saveModel(join(output, "policy"), policyModel.config, trainer.policy, { tokenizer, ...(policyModel.generationConfig ? { generationConfig: policyModel.generationConfig } : {}) });
      await writeFile(join(output, `${name}_config.json`), JSON.stringify(config, null, 2) + "\n");
      process.stderr.write(`${name}: done; final policy in ${join(output, "policy")}\n${name}: ${memoryReport(memory)}\n`);
      trainer.dispose();
      reward.dispose();
      return 0;
    },
  };
}

/** Drops the records of steps after `step` from a JSON-lines file of {step, ...} records (a torn last line too). */
async function truncateJsonl(path: string, step: number): Promise<void> {
  if (!existsSync(path)) return;
  const kept = (await readFile(path, "utf8")).split("\n").filter((line) => {
    try {
      return (JSON.parse(line) as { step?: number }).step! <= step;
    } catch {
      return false;
    }
  });
  await writeFile(path, kept.map((l) => l + "\n").join(""));
}

function fmt(x: number | undefined): string {
  return x === undefined ? "-" : x.toFixed(3);
}

export const command = groupCommand(grpo, defaultGrpoCommandConfig);
