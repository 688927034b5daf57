// `rlhf ppo`: the trainer of src/rl/ppo-trainer.ts on the shared on-policy run loop.
import type { Command } from "../command.ts";
import { parseFlags } from "../command.ts";
import { configFlags, configOverrides, normaliseFlagNames, resolveConfig } from "../../train/config.ts";
import { describeModel } from "../../models/load.ts";
import { checkPlan, formatPlan, memoryReport } from "../../train/memory-plan.ts";
import { onPolicyMemoryPlan } from "../../rl/memory-plan.ts";
import { copyParams } from "../../models/params.ts";
import { PpoTrainer, type PpoProgress } from "../../rl/ppo-trainer.ts";
import { defaultPpoRunConfig, PPO_FIXED_FIELDS, ppoRunSpecs as specs } from "../../rl/ppo-config.ts";
import { runOnPolicy } from "../../rl/on-policy-run.ts";
import { initialValueModel } from "../../rl/ppo-value.ts";
import { readSftData } from "../../data/datasets.ts";
import { fmt, loadOnPolicyModels, onPolicyFlags, policySave, readOnPolicyInputs } from "../on-policy-command.ts";

const usage = `Usage: rlhf ppo --policy PATH --reward SRC --prompts FILE --output DIR [options]

PPO with a KL penalty to the frozen starting policy (InstructGPT / TRL's PPOTrainer). The value
model starts from the first reward-model directory in --reward (as TRL does), or from the policy's
backbone with a fresh head (--value-model to choose another). Metrics go to DIR/metrics.jsonl
under TRL's names, sample completions to DIR/samples.jsonl, checkpoints to DIR/checkpoint-N
(resumable with --resume), and the final policy to DIR/policy (a Hugging Face directory).
With --ptx-data, each update also takes ptx_coef × the next-token loss on that data (InstructGPT's
PPO-ptx), logged as loss/ptx_avg.
Config fields can come from --config FILE (JSON/YAML) and be overridden by flags (--kl_coef or --kl-coef).`;

const flags = {
  ...onPolicyFlags,
  policy: { type: "string", help: "starting (SFT) policy: llama2.c .bin or HF directory <PATH>" },
  "value-model": { type: "string", help: "initialise the value model from this RM directory <PATH>" },
  "ptx-data": { type: "string", help: "PPO-ptx: SFT or pretraining data (TRL formats) whose LM loss is mixed into every update <FILE>" },
  ...configFlags(specs, defaultPpoRunConfig),
} as const;

export const command: Command = {
  summary: "optimise a policy against a reward with PPO and a KL leash (resumable)",
  async run(argv) {
    const parsed = parseFlags(normaliseFlagNames(argv, specs), usage, flags);
    if (!parsed) return 0;
    const v = parsed.values as Record<string, unknown>;
    const config = resolveConfig(defaultPpoRunConfig, specs, { ...(v.config ? { file: v.config as string } : {}), overrides: configOverrides(v, specs) });
    const inputs = await readOnPolicyInputs(v, "ppo", config.response_length);
    const { described, tokenizer, prompts, eosIds, output, promptLength } = inputs;
    const ptxPath = v["ptx-data"] as string | undefined;
    if (!ptxPath) config.ptx_coef = 0;
    const ptx = ptxPath && config.ptx_coef > 0 ? { examples: readSftData(ptxPath, tokenizer), padId: tokenizer.padTokenId ?? eosIds[0]! } : undefined;
    const valueSource = (v["value-model"] as string | undefined) ?? inputs.rewardDirs[0];
    const updateRows = Math.max(1, Math.floor(config.batch_size / config.num_mini_batches));
    const memory = onPolicyMemoryPlan({
      policy: described.arch,
      value: valueSource ? (await describeModel(valueSource)).arch : described.arch,
      reference: true,
      rewardModels: inputs.rewardArchs,
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
    const { policy: policyModel, reward } = await loadOnPolicyModels(inputs);
    // The starting policy's weights are only ever read from here on: they are the reference.
    const reference = policyModel.params;
    const common = { config, tokenizer, prompts, reward, eosIds, ...(ptx ? { ptx } : {}) };
    try {
      await runOnPolicy<PpoProgress>({
        name: "ppo",
        output,
        resume: inputs.resume,
        config,
        fixedFields: PPO_FIXED_FIELDS,
        prompts,
        policy: policySave(policyModel, tokenizer),
        others: ["value"],
        create: async (resume) => {
          if (resume) {
            const value = resume.others.value!;
            const models = { arch: policyModel.arch, policy: resume.policy, reference, valueConfig: value.config, valueArch: value.arch, value: value.params };
            return new PpoTrainer({ ...common, models, resume: { progress: resume.progress, optimizer: resume.optimizer } });
          }
          const value = await initialValueModel(policyModel, valueSource, { seed: config.seed, padTokenId: tokenizer.padTokenId ?? eosIds[0]! });
          return new PpoTrainer({ ...common, models: { arch: policyModel.arch, policy: copyParams(policyModel.params), reference, ...value } });
        },
        headline: (m) => `score ${fmt(m["objective/scores"])} kl ${fmt(m["objective/kl"])} rlhf_reward ${fmt(m["objective/rlhf_reward"])} len ${fmt(m["response_length"])}`,
        finalNote: memoryReport(memory),
      });
    } finally {
      reward.dispose();
    }
    return 0;
  },
};
