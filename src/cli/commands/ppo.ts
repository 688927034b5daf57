// `rlhf ppo`: the trainer of src/rl/ppo-trainer.ts on the shared on-policy run loop.
import type { Command } from "../command.ts";
import { parseFlags } from "../command.ts";
import { configFlags, configOverrides, normaliseFlagNames, resolveConfig } from "../../train/config.ts";
import { describeModel, type LoadedModel } from "../../models/load.ts";
import { architectureFor, asSequenceClassifier } from "../../models/architecture.ts";
import type { Params } from "../../models/types.ts";
import { memoryReport } from "../../train/memory-plan.ts";
import { plannedAdapter } from "../../train/peft-config.ts";
import { onPolicyMemoryPlan } from "../../rl/memory-plan.ts";
import { policyModels } from "../../rl/policy-models.ts";
import { PpoTrainer, type PpoProgress } from "../../rl/ppo-trainer.ts";
import { defaultPpoRunConfig, PPO_FIXED_FIELDS, ppoRunSpecs as specs, ppoUpdateRows } from "../../rl/ppo-config.ts";
import { runOnPolicy } from "../../rl/on-policy-run.ts";
import { initialValueModel, valueAdapterOn } from "../../rl/ppo-value.ts";
import { readSftData } from "../../data/datasets.ts";
import { checkOnPolicyPlan, fmt, loadOnPolicyModels, onPolicyFlags, policySave, readOnPolicyInputs, monitorContext, referencePlan } from "../on-policy-command.ts";

const usage = `Usage: rlhf ppo --policy PATH --reward SRC --prompts FILE --output DIR [options]

PPO with a KL penalty to the frozen starting policy, or to --ref-model (InstructGPT / TRL's PPOTrainer
and its ref_model: the reference must share the policy's tokenizer; with --use_peft it replaces the
adapter-off reference, at the cost of its own weights). The value
model starts from the first reward-model directory in --reward (an ensemble's member-0; as TRL does), or from the policy's
backbone with a fresh head (--value-model to choose another). Metrics go to DIR/metrics.jsonl
under TRL's names, sample completions to DIR/samples.jsonl, checkpoints to DIR/checkpoint-N
(resumable with --resume), and the final policy to DIR/policy (a Hugging Face directory).
With --ptx-data, each update also takes ptx_coef × the next-token loss on that data (InstructGPT's
PPO-ptx), logged as loss/ptx_avg. --use_peft trains a LoRA adapter on the frozen policy, and the
value model is a second adapter with a fresh head on the same frozen weights, which the reference
(the adapter off) reads too: one copy of the model's weights for all three. With --use_peft and
--value-model RM the value model is that whole reward model, trained whole (TRL's setup: it starts
out predicting the score, for a second copy of the weights and its optimizer moments). DIR/policy
and the checkpoints are then PEFT adapter directories (value/ too when it is an adapter). Dropout is off, as in TRL's PPOTrainer.
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
    // With LoRA the value model is an adapter on the policy's base unless --value-model names one:
    // then it is that whole model, trained whole beside the policy's adapter, as in TRL's PPOTrainer
    // with a peft_config (it costs a full copy and its moments, but starts out predicting the score).
    const valueSource = (v["value-model"] as string | undefined) ?? (config.use_peft ? undefined : inputs.rewardDirs[0]);
    const updateRows = ppoUpdateRows(config.batch_size, config).microBatch;
    const valueArch = valueSource ? (await describeModel(valueSource)).arch : described.arch;
    const padTokenId = tokenizer.padTokenId ?? eosIds[0]!;
    const classifier = architectureFor(asSequenceClassifier(described.config, padTokenId));
    const { memory, dryRun } = checkOnPolicyPlan(
      inputs,
      config,
      false,
      v["dry-run"],
      `lower batch_size (now ${config.batch_size}) or response_length (now ${config.response_length}), or raise num_mini_batches (now ${config.num_mini_batches}) or gradient_accumulation_steps (now ${config.gradient_accumulation_steps}) so that each update holds fewer rows`,
      (adapter) =>
        onPolicyMemoryPlan({
          policy: described.arch,
          value: valueArch,
          ...(adapter ? { adapter, ...(valueSource ? {} : { valueAdapter: plannedAdapter(classifier, config, "SEQ_CLS", false) }) } : {}),
          ...referencePlan(inputs),
          rewardModels: inputs.rewardArchs,
          rolloutRows: config.batch_size,
          promptLength,
          responseLength: config.response_length + 1,
          updateRows,
          ...(ptx ? { ptx: { rows: updateRows, length: Math.min(described.arch.maxPositions, promptLength + config.response_length + 1) } } : {}),
        }),
    );
    if (dryRun) return 0;
    const { policy: policyModel, reference, reward } = await loadOnPolicyModels(inputs, config);
    // TRL's PPOTrainer trains without dropout. The starting weights are only ever read: the reference (and with LoRA the base).
    const models = policyModels(policyModel, config, { seed: config.seed, dropout: false }, reference);
    const valueLora = config.use_peft && !valueSource ? valueAdapterOn(policyModel, config, { seed: config.seed, padTokenId }) : null;
    const policyParts = (policy: Params) => ({ arch: models.arch, policy, reference: models.reference, ...(models.referenceArch ? { referenceArch: models.referenceArch } : {}), frozen: models.frozen, ...(models.adapter ? { adapter: models.adapter } : {}) });
    const common = { config, tokenizer, prompts, reward, eosIds, ...(ptx ? { ptx } : {}) };
    try {
      await runOnPolicy<PpoProgress>({
        name: "ppo",
        output,
        resume: inputs.resume,
        config,
        reward,
        monitorContext: monitorContext(inputs, config.missing_eos_penalty !== null),
        fixedFields: PPO_FIXED_FIELDS,
        prompts,
        policy: policySave(policyModel, tokenizer, models.adapter),
        referenceModel: inputs.reference?.path,
        others: ["value"],
        create: async (resume) => {
          if (resume) {
            const value = resume.others.value!;
            // The checkpoint says which kind of value model the run trains (an adapter or a whole model).
            const lora = !("config" in value) ? (valueLora ?? valueAdapterOn(policyModel, config, { seed: config.seed, padTokenId })) : null;
            const valueModel = lora ? { ...lora, value: value.params } : { ...valueOf(value), value: value.params };
            return new PpoTrainer({ ...common, models: { ...policyParts(resume.policy), ...valueModel }, resume: { progress: resume.progress, optimizer: resume.optimizer } });
          }
          const value = valueLora ? { ...valueLora, value: valueLora.fresh() } : await initialValueModel(policyModel, valueSource, { seed: config.seed, padTokenId });
          return new PpoTrainer({ ...common, models: { ...policyParts(models.fresh()), ...value } });
        },
        headline: (m) => `score ${fmt(m["objective/scores"])} kl ${fmt(m["objective/kl"])} rlhf_reward ${fmt(m["objective/rlhf_reward"])} len ${fmt(m["response_length"])}`,
        finalNote: () => memoryReport(memory),
      });
    } finally {
      reward.dispose();
    }
    return 0;
  },
};

/** The config and architecture of a value model a checkpoint holds whole (a resumed run's use_peft is its checkpoint's). */
function valueOf(saved: LoadedModel | Pick<LoadedModel, "params">): { valueConfig: LoadedModel["config"]; valueArch: LoadedModel["arch"] } {
  if (!("config" in saved)) throw new Error("the checkpoint's value model is a LoRA adapter");
  return { valueConfig: saved.config, valueArch: saved.arch };
}
