// `rlhf grpo` (and, through groupCommand, `rlhf rloo`): the critic-free trainers of
// src/rl/group-trainer.ts on the shared on-policy run loop, with TRL's config fields.
import type { Command } from "../command.ts";
import { parseFlags, UsageError } from "../command.ts";
import { configFlags, configOverrides, normaliseFlagNames, resolveConfig } from "../../train/config.ts";
import { memoryReport } from "../../train/memory-plan.ts";
import { policyModels } from "../../rl/policy-models.ts";
import { GroupTrainer, grpo, type GroupAlgorithm, type GroupProgress } from "../../rl/group-trainer.ts";
import { defaultGrpoRunConfig, GROUP_FIXED_FIELDS, groupRunSpecs, type GroupRunConfig } from "../../rl/group-config.ts";
import { runOnPolicy } from "../../rl/on-policy-run.ts";
import { checkOnPolicyPlan, criticFreePlan, fmt, loadOnPolicyModels, onPolicyFlags, policySave, readOnPolicyInputs, monitorContext } from "../on-policy-command.ts";

const descriptions = {
  grpo: `GRPO (DeepSeekMath; TRL's GRPOTrainer): num_generations completions per prompt, advantages are
scores normalised within each prompt's group, no value model; a per-token k3 KL penalty (beta)
keeps the policy near the frozen starting policy. loss_type picks TRL's loss: dapo (default), grpo,
dr_grpo, bnpo, cispo or sapo; importance_sampling_level sequence gives GSPO.`,
  rloo: `RLOO (Ahmadian et al. 2024; TRL's RLOOTrainer): num_generations completions per prompt, each
completion's reward is its score minus beta × its sequence KL to the frozen starting policy, and
its advantage is that reward minus the mean of the others' in its group; no value model. A
completion is one action: its log-probability is the sum over its tokens, and one ratio per
completion is clipped (epsilon, epsilon_high).`,
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
Hugging Face directory; with --use_peft, a LoRA adapter on the frozen policy, which is also the
reference with the adapter off; lora_dropout stays on unless --disable_dropout, as in TRL).
--ref-model PATH (TRL's ref_model) makes that model, of the policy's tokenizer, the KL reference. Config
fields can come from --config FILE (JSON/YAML) and be overridden by flags (--num_generations or
--num-generations).`;
  const flags = { ...onPolicyFlags, ...configFlags(specs, defaults) } as const;

  return {
    summary: `optimise a policy against a reward with ${name.toUpperCase()} (groups of completions, no value model; resumable)`,
    async run(argv) {
      const parsed = parseFlags(normaliseFlagNames(argv, specs), usage, flags);
      if (!parsed) return 0;
      const v = parsed.values as Record<string, unknown>;
      const config = resolveConfig(defaults, specs, { ...(v.config ? { file: v.config as string } : {}), overrides: configOverrides(v, specs) });
      if ((config.batch_size * config.num_generations) % config.gradient_accumulation_steps !== 0) {
        throw new UsageError(`gradient_accumulation_steps (${config.gradient_accumulation_steps}) must divide batch_size × num_generations (${config.batch_size * config.num_generations})`);
      }
      if (config.sapo_temperature_pos <= 0 || config.sapo_temperature_neg <= 0) {
        throw new UsageError(`sapo_temperature_pos and sapo_temperature_neg must be above 0 (sapo's gate divides by them), got ${config.sapo_temperature_pos} and ${config.sapo_temperature_neg}`);
      }
      const inputs = await readOnPolicyInputs(v, name, config.max_completion_length);
      const completions = config.batch_size * config.num_generations;
      const dropout = !config.disable_dropout;
      const advice = `lower batch_size (now ${config.batch_size}), num_generations (now ${config.num_generations}) or max_completion_length (now ${config.max_completion_length}), or raise gradient_accumulation_steps (now ${config.gradient_accumulation_steps})`;
      const { memory, dryRun } = checkOnPolicyPlan(inputs, config, dropout, v["dry-run"], advice, criticFreePlan(inputs, { rolloutRows: completions, updateRows: completions / config.gradient_accumulation_steps, responseLength: config.max_completion_length + 1 }));
      if (dryRun) return 0;
      const { policy: policyModel, reference, reward } = await loadOnPolicyModels(inputs, config);
      const { tokenizer, prompts, eosIds, output } = inputs;
      process.stderr.write(`${name}: ${prompts.length} prompts, ${config.batch_size} × ${config.num_generations} completions per step, reward ${reward.name}\n`);
      // The reference is the starting policy (or --ref-model), also when resuming; the trainer only reads it.
      const models = policyModels(policyModel, config, { seed: config.seed, dropout }, reference);
      const common = { algorithm, config, tokenizer, prompts, reward, eosIds };
      try {
        await runOnPolicy<GroupProgress>({
          name,
          output,
          resume: inputs.resume,
          config,
          reward,
          monitorContext: monitorContext(inputs, config.mask_truncated_completions),
          fixedFields: GROUP_FIXED_FIELDS,
          prompts,
          policy: policySave(policyModel, tokenizer, models.adapter),
          referenceModel: inputs.reference?.path,
          create: (resume) =>
            resume
              ? new GroupTrainer({ ...common, models: { ...models, policy: resume.policy }, resume: { progress: resume.progress, optimizer: resume.optimizer } })
              : new GroupTrainer({ ...common, models: { ...models, policy: models.fresh() } }),
          headline: (m) => `reward ${fmt(m.reward)} ± ${fmt(m.reward_std)} kl ${fmt(m["objective/kl"])} len ${fmt(m["completions/mean_length"])} loss ${fmt(m.loss)}`,
          finalNote: () => memoryReport(memory),
        });
      } finally {
        reward.dispose();
      }
      return 0;
    },
  };
}

export const command = groupCommand(grpo, defaultGrpoRunConfig);
