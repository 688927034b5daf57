// Engine memory of an on-policy run (PPO, GRPO/RLOO), from train/memory-plan.ts's parts: the models
// it holds (a trained policy, PPO's trained value model, the frozen reference and reward models),
// then the larger of its two phases, which never overlap: the rollout (KV-cached sampling, then
// scoring passes one model at a time) and the update (a forward and backward pass per micro-batch).
import type { Architecture } from "../models/architecture.ts";
import {
  generationItems,
  inferencePassItems,
  largerOf,
  modelShape,
  plan,
  trainPassItems,
  transposedParams,
  weightItems,
  type MemoryItem,
  type MemoryPlan,
} from "../train/memory-plan.ts";

export interface OnPolicyMemory {
  policy: Architecture;
  /** PPO's value model (trained alongside the policy). */
  value?: Architecture;
  /** Whether a frozen reference copy of the policy is held. */
  reference: boolean;
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
    ...weightItems("policy", policy, true),
    ...(value ? weightItems("value", value, true) : []),
    ...(m.reference ? weightItems("reference", policy, false) : []),
    ...m.rewardModels.flatMap((rm, i) => weightItems(m.rewardModels.length > 1 ? `reward model ${i + 1}` : "reward model", modelShape(rm), false)),
  ];
  const scoring = [
    inferencePassItems("policy", policy, { rows: m.rolloutRows, length, headTokens: m.rolloutRows * m.responseLength }),
    ...(value ? [inferencePassItems("value", value, { rows: m.rolloutRows, length, headTokens: 0 })] : []),
    ...m.rewardModels.map((rm) => inferencePassItems("reward model", modelShape(rm), { rows: m.rolloutRows, length, headTokens: 0 })),
  ].reduce(largerOf);
  const rollout = [...generationItems("policy", policy, m.rolloutRows, length, transposedParams(m.policy)), ...scoring];
  const update = [
    ...trainPassItems("policy", policy, { rows: m.updateRows, length, headTokens: m.updateRows * m.responseLength }),
    ...(value ? trainPassItems("value", value, { rows: m.updateRows, length, headTokens: 0 }) : []),
    ...(m.ptx ? trainPassItems("ptx", policy, { rows: m.ptx.rows, length: m.ptx.length, headTokens: m.ptx.rows * (m.ptx.length - 1) }) : []),
  ];
  return plan([...held, ...largerOf(rollout, update)]);
}
