// Engine memory of an on-policy run (PPO, GRPO/RLOO), from train/memory-plan.ts's parts: the models
// it holds (a trained policy, PPO's trained value model, the frozen reference and reward models;
// with LoRA the policy's weights once, frozen, under the policy's and the value's adapters),
// then the larger of its two phases, which never overlap: the rollout (KV-cached sampling, then
// scoring passes one model at a time) and the update (a forward and backward pass per micro-batch).
import type { Architecture } from "../models/architecture.ts";
import {
  adapterItems,
  generationItems,
  inferencePassItems,
  largerOf,
  modelShape,
  plan,
  trainedModelItems,
  trainPassItems,
  transposedParams,
  weightItems,
  type AdapterShape,
  type MemoryItem,
  type MemoryPlan,
} from "../train/memory-plan.ts";

export interface OnPolicyMemory {
  policy: Architecture;
  /** LoRA: the policy trained is this adapter on the policy's frozen weights, which the reference (and a value adapter) read too. */
  adapter?: AdapterShape;
  /** PPO's value model (trained alongside the policy). */
  value?: Architecture;
  /** LoRA: the value model is this adapter (and head) on the policy's frozen weights, not a model of its own. */
  valueAdapter?: AdapterShape;
  /** Whether a frozen reference copy of the policy is held (never with LoRA: the reference is the base). */
  reference: boolean;
  /** A reference model of its own (--ref-model), held frozen in place of the copy (with LoRA too). */
  referenceModel?: Architecture;
  /** Reward models loaded as reward sources (frozen). */
  rewardModels: Architecture[];
  /** Sequences sampled per step (PPO: batch_size; GRPO: batch_size × num_generations). */
  rolloutRows: number;
  promptLength: number;
  responseLength: number;
  /** Sequences per optimizer micro-batch. */
  updateRows: number;
  /** PPO-ptx rows added to each micro-batch, and their length. */
  ptx?: { rows: number; length: number };
}

export function onPolicyMemoryPlan(m: OnPolicyMemory): MemoryPlan {
  const policy = modelShape(m.policy);
  const value = m.value ? modelShape(m.value) : null;
  const length = m.promptLength + m.responseLength;
  const held: MemoryItem[] = [
    ...trainedModelItems("policy", policy, m.adapter, [...(m.referenceModel ? [] : ["the reference"]), ...(m.valueAdapter ? ["the value model"] : [])].join(" and ") || undefined),
    ...(value ? (m.valueAdapter ? adapterItems("value", m.valueAdapter) : weightItems("value", value, true)) : []),
    ...(m.referenceModel ? weightItems("reference", modelShape(m.referenceModel), false) : m.reference && !m.adapter ? weightItems("reference", policy, false) : []),
    ...m.rewardModels.flatMap((rm, i) => weightItems(m.rewardModels.length > 1 ? `reward model ${i + 1}` : "reward model", modelShape(rm), false)),
  ];
  const scoring = [
    inferencePassItems("policy", policy, { rows: m.rolloutRows, length, headTokens: m.rolloutRows * m.responseLength }),
    ...(m.referenceModel ? [inferencePassItems("reference", modelShape(m.referenceModel), { rows: m.rolloutRows, length, headTokens: m.rolloutRows * m.responseLength })] : []),
    ...(value ? [inferencePassItems("value", value, { rows: m.rolloutRows, length, headTokens: 0 })] : []),
    ...m.rewardModels.map((rm) => inferencePassItems("reward model", modelShape(rm), { rows: m.rolloutRows, length, headTokens: 0 })),
  ].reduce(largerOf);
  const rollout = [...generationItems("policy", policy, m.rolloutRows, length, transposedParams(m.policy)), ...scoring];
  const update = [
    ...trainPassItems("policy", policy, { rows: m.updateRows, length, headTokens: m.updateRows * m.responseLength }, undefined, m.adapter),
    ...(value ? trainPassItems("value", value, { rows: m.updateRows, length, headTokens: 0 }, undefined, m.valueAdapter) : []),
    ...(m.ptx ? trainPassItems("ptx", policy, { rows: m.ptx.rows, length: m.ptx.length, headTokens: m.ptx.rows * (m.ptx.length - 1) }, undefined, m.adapter) : []),
  ];
  return plan([...held, ...largerOf(rollout, update)], m.adapter !== undefined);
}
