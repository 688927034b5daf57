// `rlhf grpo` (and, through groupCommand, `rlhf rloo`): the critic-free trainers of
// src/rl/group-trainer.ts with TRL's config fields, metrics.jsonl, samples.jsonl and resumable
// checkpoints, laid out like `rlhf ppo`.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "../command.ts";
import { parseFlags, requireFlag, requireRepeated, UsageError } from "../command.ts";
import { configFlags, configOverrides, normaliseFlagNames, resolveConfig } from "../../train/config.ts";
import { describeModel, loadModel, resolveTokenizer } from "../../models/load.ts";
import { checkPlan, formatPlan, memoryReport } from "../../train/memory-plan.ts";
import { onPolicyMemoryPlan } from "../../rl/memory-plan.ts";
import { encodePrompts } from "../../rl/rollout.ts";
import { isSequenceClassifier } from "../../models/config.ts";
import { copyParams } from "../../models/params.ts";
import { eosIdsOf } from "../../generation/eos.ts";
import { loadRewardSource } from "../../rl/reward-source.ts";
import { readPromptFile, promptText } from "../../rl/prompts.ts";
import { GroupTrainer, grpo, type GroupAlgorithm, type GroupProgress } from "../../rl/group-trainer.ts";
import { defaultGrpoRunConfig, GROUP_FIXED_FIELDS, groupRunSpecs, type GroupRunConfig } from "../../rl/group-config.ts";
import { refuseOldRun, runOnPolicy } from "../../rl/on-policy-run.ts";

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

export function groupCommand(algorithm: GroupAlgorithm, defaults: GroupRunConfig): Command {
  const name = algorithm.name;
  const specs = groupRunSpecs(name);
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
      refuseOldRun(output, Boolean(v.resume));
      const rewardSpecs = requireRepeated(v.reward as string[] | undefined, "reward");
      const config = resolveConfig(defaults, specs, { ...(v.config ? { file: v.config as string } : {}), overrides: configOverrides(v, specs) });
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
      process.stderr.write(`${name}: ${prompts.length} prompts, ${config.batch_size} × ${config.num_generations} completions per step, reward ${reward.name}\n`);
      // The reference is always the starting policy, also when resuming; the trainer only reads it.
      const reference = policyModel.params;
      const common = { algorithm, config, tokenizer, prompts, reward, eosIds };
      try {
        await runOnPolicy<GroupProgress>({
          name,
          output,
          resume: Boolean(v.resume),
          config,
          fixedFields: GROUP_FIXED_FIELDS,
          prompts,
          policy: { config: policyModel.config, tokenizer, ...(policyModel.generationConfig ? { generationConfig: policyModel.generationConfig } : {}) },
          create: (resume) =>
            resume
              ? new GroupTrainer({ ...common, models: { arch: policyModel.arch, policy: resume.policy, reference }, resume: { progress: resume.progress, optimizer: resume.optimizer } })
              : new GroupTrainer({ ...common, models: { arch: policyModel.arch, policy: copyParams(policyModel.params), reference } }),
          headline: (m) => `reward ${fmt(m.reward)} ± ${fmt(m.reward_std)} kl ${fmt(m["objective/kl"])} len ${fmt(m["completions/mean_length"])} loss ${fmt(m.loss)}`,
          finalNote: memoryReport(memory),
        });
      } finally {
        reward.dispose();
      }
      return 0;
    },
  };
}

function fmt(x: number | undefined): string {
  return x === undefined ? "-" : x.toFixed(3);
}

export const command = groupCommand(grpo, defaultGrpoRunConfig);
