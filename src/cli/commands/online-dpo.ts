// `rlhf online-dpo`: the trainer of src/rl/online-dpo-trainer.ts on the shared on-policy run loop,
// with PPO's flags where they mean the same.
import type { Command } from "../command.ts";
import { parseFlags, UsageError } from "../command.ts";
import { configFlags, configOverrides, normaliseFlagNames, resolveConfig } from "../../train/config.ts";
import { memoryReport } from "../../train/memory-plan.ts";
import { policyModels } from "../../rl/policy-models.ts";
import { runOnPolicy } from "../../rl/on-policy-run.ts";
import { OnlineDpoTrainer, type OnlineDpoProgress } from "../../rl/online-dpo-trainer.ts";
import { defaultOnlineDpoRunConfig, ONLINE_DPO_FIXED_FIELDS, onlineDpoRunSpecs as specs } from "../../rl/online-dpo-config.ts";
import { checkOnPolicyPlan, criticFreePlan, fmt, loadOnPolicyModels, onPolicyFlags, policySave, readOnPolicyInputs, monitorContext } from "../on-policy-command.ts";

const usage = `Usage: rlhf online-dpo --policy PATH --reward SRC --prompts FILE --output DIR [options]

Online DPO (Guo et al. 2024; TRL's OnlineDPOTrainer): each step samples two completions per
prompt from the current policy, the reward source ranks them (higher score chosen), and one DPO
step (loss_type sigmoid or ipo, beta) is taken on those pairs against the frozen starting policy
(or --ref-model, TRL's ref_model: a model of the policy's tokenizer).
The reward is a reward-model directory or a .mjs/.ts module exporting \`reward(prompts,
completions)\`; several --reward flags are summed (PATH@WEIGHT weights one).
Metrics go to DIR/metrics.jsonl under TRL's names, pairs to DIR/samples.jsonl, checkpoints to
DIR/checkpoint-N (resumable with --resume), and the final policy to DIR/policy (with --use_peft a
LoRA adapter on the frozen policy, the reference being the policy with the adapter off). Config fields can
come from --config FILE (JSON/YAML) and be overridden by flags (--beta, --response_length, ...).`;

const flags = { ...onPolicyFlags, ...configFlags(specs, defaultOnlineDpoRunConfig) } as const;

export const command: Command = {
  summary: "online DPO: on-policy pairs ranked by a reward, DPO steps against the frozen start (resumable)",
  async run(argv) {
    const parsed = parseFlags(normaliseFlagNames(argv, specs), usage, flags);
    if (!parsed) return 0;
    const v = parsed.values as Record<string, unknown>;
    const config = resolveConfig(defaultOnlineDpoRunConfig, specs, { ...(v.config ? { file: v.config as string } : {}), overrides: configOverrides(v, specs) });
    if (config.batch_size % config.gradient_accumulation_steps !== 0) throw new UsageError(`gradient_accumulation_steps (${config.gradient_accumulation_steps}) must divide batch_size (${config.batch_size})`);
    if (!(config.beta > 0)) throw new UsageError(`--beta must be greater than 0, got ${config.beta}`);
    const inputs = await readOnPolicyInputs(v, "online-dpo", config.response_length);
    const dropout = !config.disable_dropout;
    const advice = `lower batch_size (now ${config.batch_size}) or response_length (now ${config.response_length}), or raise gradient_accumulation_steps (now ${config.gradient_accumulation_steps})`;
    const { memory, dryRun } = checkOnPolicyPlan(inputs, config, dropout, v["dry-run"], advice, criticFreePlan(inputs, { rolloutRows: 2 * config.batch_size, updateRows: (2 * config.batch_size) / config.gradient_accumulation_steps, responseLength: config.response_length + 1 }));
    if (dryRun) return 0;
    const { policy, reference, reward } = await loadOnPolicyModels(inputs, config);
    const { tokenizer, prompts, eosIds } = inputs;
    // The starting policy's weights are only read from here on: they are the reference (and with LoRA the base).
    const parts = policyModels(policy, config, { seed: config.seed, dropout }, reference);
    const models = (params: typeof policy.params) => ({ ...parts, policy: params });
    const common = { config, tokenizer, prompts, reward, eosIds };
    try {
      await runOnPolicy<OnlineDpoProgress>({
        name: "online_dpo",
        output: inputs.output,
        resume: inputs.resume,
        config,
        reward,
        monitorContext: monitorContext(inputs, config.missing_eos_penalty !== null),
        fixedFields: ONLINE_DPO_FIXED_FIELDS,
        prompts,
        policy: policySave(policy, tokenizer, parts.adapter),
        referenceModel: inputs.reference?.path,
        create: (resume) =>
          resume
            ? new OnlineDpoTrainer({ ...common, models: models(resume.policy), resume: { progress: resume.progress, optimizer: resume.optimizer } })
            : new OnlineDpoTrainer({ ...common, models: models(parts.fresh()) }),
        headline: (m) => `score ${fmt(m["objective/scores"])} margin ${fmt(m["objective/scores_margin"])} kl ${fmt(m["objective/kl"])} acc ${fmt(m["rewards/accuracies"])} loss ${fmt(m.loss)}`,
        finalNote: () => memoryReport(memory),
      });
    } finally {
      reward.dispose();
    }
    return 0;
  },
};
