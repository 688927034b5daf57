// What the on-policy commands (ppo, grpo, rloo, online-dpo) share before their trainers differ:
// the flags that name the models, prompts and output; reading and checking them; the reward
// models to plan memory for; and, once the plan fits, loading the policy and the reward source.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { baseFlag, requireFlag, requireRepeated, UsageError } from "./command.ts";
import { describeModel, loadModel, resolveTokenizer, type LoadedModel, type ModelDescription } from "../models/load.ts";
import { isAdapterDir } from "../models/adapter-files.ts";
import type { LoraConfig } from "../models/lora.ts";
import { checkPlan, formatPlan, type AdapterShape, type MemoryPlan } from "../train/memory-plan.ts";
import { runPlans, type PeftFields } from "../train/peft-config.ts";
import { onPolicyMemoryPlan, type OnPolicyMemory } from "../rl/memory-plan.ts";
import type { Architecture } from "../models/architecture.ts";
import { isSequenceClassifier } from "../models/config.ts";
import { eosIdsOf } from "../generation/eos.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { encodePrompts } from "../rl/rollout.ts";
import { refuseOldRun } from "../rl/on-policy-run.ts";
import { loadRewardSource, type RewardSource } from "../rl/reward-source.ts";
import { readPromptFile } from "../rl/prompts.ts";
import type { MonitorContext } from "../rl/monitors/monitor-set.ts";
import { readRewardStats, REWARD_STATS_FILE } from "../train/reward-stats.ts";
import { ensembleMemberDirs, isEnsembleDir } from "../train/reward-ensemble.ts";
import type { EnsembleOptions } from "../algorithms/ensemble-reward.ts";
import { promptText } from "../tokenizers/chat.ts";

export const onPolicyFlags = {
  policy: { type: "string", help: "starting policy: llama2.c .bin, HF directory or LoRA adapter directory (merged) <PATH>" },
  ...baseFlag,
  "ref-model": { type: "string", help: "KL reference model (default: the starting --policy, frozen); must share its tokenizer <PATH>" },
  reward: { type: "string", multiple: true, help: "reward source: RM or ensemble directory or .mjs/.ts module, PATH@WEIGHT to weight (repeatable) <SRC>" },
  prompts: { type: "string", help: "JSON lines with a prompt field, or .txt lines <FILE>" },
  output: { type: "string", help: "output directory <DIR>" },
  tokenizer: { type: "string", help: "policy tokenizer <PATH> (default: found with the policy)" },
  config: { type: "string", help: "JSON/YAML file of config fields <FILE>" },
  resume: { type: "boolean", help: "continue from the latest checkpoint in DIR" },
  "dry-run": { type: "boolean", help: "print the engine memory plan for this run and exit" },
} as const;

export interface OnPolicyInputs {
  output: string;
  resume: boolean;
  policyPath: string;
  /** --base: the base of a policy given as a LoRA adapter. */
  base: string | undefined;
  described: ModelDescription;
  /** --ref-model: the reference's path and description (absent: the reference is the starting policy). */
  reference: { path: string; described: ModelDescription } | undefined;
  tokenizer: Tokenizer;
  prompts: string[];
  eosIds: number[];
  rewardSpecs: string[];
  /** The reward sources that are model directories, in order; an ensemble's members in its place. */
  rewardDirs: string[];
  rewardArchs: Architecture[];
  /** The fixed prompt width of every rollout. */
  promptLength: number;
}

/** Reads and checks the shared flags; refuses a fresh run into an old run's directory before loading anything. */
export async function readOnPolicyInputs(v: Record<string, unknown>, name: string, responseLength: number): Promise<OnPolicyInputs> {
  const output = requireFlag(v.output as string | undefined, "output");
  const resume = Boolean(v.resume);
  refuseOldRun(output, resume);
  const rewardSpecs = requireRepeated(v.reward as string[] | undefined, "reward");
  const policyPath = requireFlag(v.policy as string | undefined, "policy");
  const base = v.base as string | undefined;
  const described = await describeModel(policyPath, { base });
  if (isSequenceClassifier(described.config)) throw new UsageError(`${policyPath} is a sequence classifier; ${name} needs a causal LM policy`);
  if (responseLength + 2 > described.arch.maxPositions) {
    throw new UsageError(`a completion length of ${responseLength} leaves no room for a prompt in the policy's context of ${described.arch.maxPositions} tokens`);
  }
  const reference = await describeReference(v["ref-model"] as string | undefined, described, name);
  const tokenizer = await resolveTokenizer(described, v.tokenizer as string | undefined);
  const prompts = (await readPromptFile(requireFlag(v.prompts as string | undefined, "prompts"))).map((p) => promptText(tokenizer, p));
  const eosIds = eosIdsOf(described, tokenizer);
  if (eosIds.length === 0) throw new UsageError("the policy has no EOS token id (config eos_token_id or tokenizer)");
  const rewardDirs = rewardSpecs.map((s) => s.replace(/@[^@/]*$/, "")).flatMap((p) => ensembleMemberDirs(p) ?? (existsSync(join(p, "config.json")) || isAdapterDir(p) ? [p] : []));
  const rewardArchs = await Promise.all(rewardDirs.map(async (p) => (await describeModel(p)).arch));
  const promptLength = encodePrompts(tokenizer, prompts, described.arch.maxPositions, responseLength).promptLength;
  return { output, resume, policyPath, base, described, reference, tokenizer, prompts, eosIds, rewardSpecs, rewardDirs, rewardArchs, promptLength };
}

/**
 * --ref-model's description, checked against the policy's: the KL compares the two models' next-token
 * distributions over the policy's tokens, so the vocabularies must be one, and the reference must
 * read sequences as long as the policy's.
 */
async function describeReference(path: string | undefined, policy: ModelDescription, name: string): Promise<OnPolicyInputs["reference"]> {
  if (path === undefined) return undefined;
  const described = await describeModel(path);
  if (isSequenceClassifier(described.config)) throw new UsageError(`--ref-model ${path} is a sequence classifier; ${name} needs a causal LM reference`);
  if (described.arch.vocabSize !== policy.arch.vocabSize) {
    throw new UsageError(`--ref-model ${path} has a vocabulary of ${described.arch.vocabSize} tokens, the policy ${policy.arch.vocabSize}; they must share the tokenizer`);
  }
  if (described.arch.maxPositions < policy.arch.maxPositions) {
    throw new UsageError(`--ref-model ${path} has a context of ${described.arch.maxPositions} tokens, the policy ${policy.arch.maxPositions}; the reference must read sequences as long as the policy's`);
  }
  return { path, described };
}

/** The policy's weights, --ref-model's when given, and the reward source, loaded once the memory plan fits. */
export async function loadOnPolicyModels(inputs: OnPolicyInputs, ensemble: EnsembleOptions): Promise<{ policy: LoadedModel; reference: LoadedModel | undefined; reward: RewardSource }> {
  const policy = await loadModel(inputs.policyPath, { base: inputs.base });
  const reference = inputs.reference ? await loadModel(inputs.reference.path) : undefined;
  return { policy, reference, reward: await loadRewardSource(inputs.rewardSpecs, ensemble) };
}

/** What the memory plan holds for the reference: a copy of the policy's weights, or --ref-model's own. */
export function referencePlan(inputs: OnPolicyInputs): Pick<OnPolicyMemory, "reference" | "referenceModel"> {
  return { reference: true, ...(inputs.reference ? { referenceModel: inputs.reference.described.arch } : {}) };
}

/** What every saved policy carries: its config, tokenizer and generation config, and the adapter's config when the policy trained is a LoRA adapter. */
export function policySave(policy: LoadedModel, tokenizer: Tokenizer, adapter?: LoraConfig) {
  return { config: policy.config, tokenizer, ...(policy.generationConfig ? { generationConfig: policy.generationConfig } : {}), ...(adapter ? { adapter } : {}) };
}

/**
 * The run's memory plan: printed with --dry-run (returns true: the command stops), else checked
 * (a refusal names `batchAdvice`, or --use_peft when a full fine-tuning run would fit with it).
 * `planFor` is given the policy adapter's shape when the run trains one; `dropout` whether it trains with lora_dropout.
 */
export function checkOnPolicyPlan(inputs: OnPolicyInputs, config: PeftFields, dropout: boolean, dryRun: unknown, batchAdvice: string, planFor: (adapter?: AdapterShape) => MemoryPlan): { memory: MemoryPlan; dryRun: boolean } {
  const plans = runPlans(config, inputs.described.arch, "CAUSAL_LM", dropout, planFor);
  if (dryRun) {
    process.stdout.write(formatPlan(plans.memory));
    return { memory: plans.memory, dryRun: true };
  }
  checkPlan(plans.memory, batchAdvice, plans.lora);
  return { memory: plans.memory, dryRun: false };
}

/** checkOnPolicyPlan's `planFor` for a run without a value model (GRPO, RLOO, online DPO): its sequences per rollout and per update, and the response columns. */
export function criticFreePlan(inputs: OnPolicyInputs, rows: { rolloutRows: number; updateRows: number; responseLength: number }): (adapter?: AdapterShape) => MemoryPlan {
  return (adapter) => onPolicyMemoryPlan({ policy: inputs.described.arch, ...(adapter ? { adapter } : {}), ...referencePlan(inputs), rewardModels: inputs.rewardArchs, promptLength: inputs.promptLength, ...rows });
}

export function fmt(x: number | undefined): string {
  return x === undefined ? "-" : x.toFixed(3);
}

/**
 * What the monitors need besides the config: the reward model's training statistics (only when
 * the reward is one reward-model or ensemble directory, unweighted: a sum of sources has no
 * training range; an ensemble's are of its members' mean), and whether the run drops or penalises
 * completions without EOS (`losesSignal`).
 */
export function monitorContext(inputs: OnPolicyInputs, truncationLosesSignal: boolean): MonitorContext {
  const [spec] = inputs.rewardSpecs;
  const dir = spec !== undefined && isEnsembleDir(spec) ? spec : inputs.rewardDirs[0];
  if (inputs.rewardSpecs.length !== 1 || dir === undefined || spec !== dir) {
    return { rewardStats: null, rewardStatsMissing: "the reward is not one reward-model directory", truncationLosesSignal };
  }
  const rewardStats = readRewardStats(dir);
  if (rewardStats) return { rewardStats, truncationLosesSignal };
  return { rewardStats: null, rewardStatsMissing: `${dir} has no ${REWARD_STATS_FILE} (rlhf rm stats --model ${dir} --data FILE writes it)`, truncationLosesSignal };
}
