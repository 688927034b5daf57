// The loop's config file (YAML or JSON): what the rounds start from, how they sample, who labels,
// and the trainers' settings. Trainer settings are TRL's field names, handed to `rlhf rm train` and
// the policy's trainer (`rlhf dpo`, `rlhf ppo` or `rlhf online-dpo`) as flags, so those commands check them and name the field in their errors. Paths are
// resolved against the config file's folder, so a run directory's copy of the config (which
// `rlhf loop resume` reads) names the same files.
import { dirname, isAbsolute, resolve } from "node:path";
import { ConfigError, readConfigFile } from "../train/config.ts";
import { SELECTIONS, type Selection } from "./selection.ts";
import { ROLLOUT_ENGINES, type RolloutEngineName } from "../generation/rollout-engine.ts";

export type Scalar = string | number | boolean;

/** A command's flags from a mapping of its config fields ({learning_rate: 1e-4} → --learning_rate 1e-4). */
export const fieldFlags = (fields: Record<string, Scalar>) => Object.entries(fields).flatMap(([k, v]) => [`--${k}`, String(v)]);

/** What optimises a round's policy: DPO on the round's labels, or PPO / online DPO against the round's reward model. */
export const POLICY_TRAINERS = ["dpo", "ppo", "online-dpo"] as const;
export type PolicyTrainer = (typeof POLICY_TRAINERS)[number];

export const SUGGESTIONS_MODES = ["hidden", "shown"] as const;
export type SuggestionsMode = (typeof SUGGESTIONS_MODES)[number];

/** Who answers a round's comparisons. */
export type LabelerConfig =
  | { type: "reward"; reward: string }
  | {
    type: "people"; url: string; api_key?: string; poll_seconds: number; min_labels?: number; deadline_minutes?: number; project_prefix: string;
    /**
     * The judge of `rest` (which must be {type: judge}) also judges the people's comparisons, and its
     * verdicts go to the feedback app as the items' suggestions: `hidden` (only for the project's
     * AI-vs-people kappa) or `shown` to the labelers. Absent: no suggestions.
     */
    suggestions?: SuggestionsMode;
  }
  /** `rlhf judge`: SRC a URL (with `model`) or a local model; `args` its other flags (template, concurrency, …). */
  | { type: "judge"; judge: string; model?: string; args: Record<string, Scalar> };

export interface LoopConfig {
  /** The SFT model: the first round's policy and every round's KL reference. */
  policy: string;
  prompts: string;
  eval_prompts: string;
  rounds: number;
  /** Prompts sampled per round (a seeded draw of the prompt file; all of it when absent). */
  prompts_per_round?: number;
  seed: number;
  sampling: { k: number; max_new_tokens: number; temperature: number; top_k: number; top_p: number; batch_size: number };
  labeler: LabelerConfig;
  /** Comparisons sent to the labeler per round, chosen by `selection`; the rest go to `rest`. */
  label_budget?: number;
  selection: Selection;
  /** What happens to the comparisons over the budget: dropped, or labeled by a reward module or a judge. */
  rest: { type: "drop" } | Exclude<LabelerConfig, { type: "people" }>;
  /** A preference function the trainers never see, scored on the evaluation samples (`gold`). */
  gold?: string;
  /** Reward model: backbone (default: the policy), the share of each round's labels held out, an ensemble of N (`rm train --ensemble N`), and `rlhf rm train`'s fields. */
  reward_model: { model?: string; held_out: number; ensemble?: number; ensemble_bootstrap?: boolean; args: Record<string, Scalar> };
  /** The round's policy optimiser; its reference (--ref-model) is always `policy`, the SFT model. */
  policy_trainer: PolicyTrainer;
  /** `rlhf dpo`'s fields (policy_trainer dpo). */
  dpo: Record<string, Scalar>;
  /** `rlhf ppo`'s fields (policy_trainer ppo). */
  ppo: Record<string, Scalar>;
  /** `rlhf online-dpo`'s fields (policy_trainer online-dpo). */
  online_dpo: Record<string, Scalar>;
  eval: { num_samples: number; max_new_tokens: number; temperature: number; seed: number; batch_size: number };
  /** Where the round's comparisons and evaluation samples are drawn, and the on-policy trainer's rollouts unless its own fields say otherwise (`--rollout_engine`). */
  rollout_engine: RolloutEngineName;
}

const defaults = {
  rounds: 3,
  seed: 0,
  sampling: { k: 4, max_new_tokens: 48, temperature: 1, top_k: 0, top_p: 1, batch_size: 16 },
  selection: "uncertainty" as const,
  eval: { num_samples: 2, max_new_tokens: 48, temperature: 0.7, seed: 1, batch_size: 16 },
};

export function readLoopConfig(path: string): LoopConfig {
  const raw = readConfigFile(path);
  const base = dirname(path);
  const where = (field: string) => `${path}: ${field}`;
  const known = ["policy", "prompts", "eval_prompts", "rounds", "prompts_per_round", "seed", "sampling", "labeler", "label_budget", "selection", "rest", "gold", "reward_model", "policy_trainer", "dpo", "ppo", "online_dpo", "eval", "rollout_engine"];
  for (const key of Object.keys(raw)) if (!known.includes(key)) throw new ConfigError(`${where(key)} is not a loop setting (known: ${known.join(", ")})`);
  const file = (field: string, value: unknown = raw[field]) => {
    if (typeof value !== "string" || value === "") throw new ConfigError(`${where(field)} must be a path`);
    return isAbsolute(value) ? value : resolve(base, value);
  };
  const int = (field: string, value: unknown, fallback: number | undefined, min: number): number => {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min) throw new ConfigError(`${where(field)} must be an integer of at least ${min}, got ${JSON.stringify(value)}`);
    return value;
  };
  const num = (field: string, value: unknown, fallback: number, min: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isFinite(value) || value < min) throw new ConfigError(`${where(field)} must be a number of at least ${min}, got ${JSON.stringify(value)}`);
    return value;
  };
  const mapping = (field: string, value: unknown): Record<string, unknown> => {
    if (value === undefined) return {};
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ConfigError(`${where(field)} must be a mapping`);
    return value as Record<string, unknown>;
  };
  const scalars = (field: string, value: unknown): Record<string, Scalar> => {
    const m = mapping(field, value);
    for (const [k, v] of Object.entries(m)) if (!["string", "number", "boolean"].includes(typeof v)) throw new ConfigError(`${where(`${field}.${k}`)} must be a string, number or boolean`);
    return m as Record<string, Scalar>;
  };

  const s = mapping("sampling", raw.sampling);
  const e = mapping("eval", raw.eval);
  const rm = mapping("reward_model", raw.reward_model);
  const selection = raw.selection ?? defaults.selection;
  if (!SELECTIONS.includes(selection as Selection)) throw new ConfigError(`${where("selection")} must be ${SELECTIONS.join(", ")}, got ${JSON.stringify(selection)}`);
  const ensemble = rm.ensemble === undefined ? undefined : int("reward_model.ensemble", rm.ensemble, undefined, 2);
  if (selection === "disagreement" && ensemble === undefined) throw new ConfigError(`${where("selection")} disagreement needs a reward-model ensemble: set reward_model.ensemble to 2 or more`);
  if (rm.ensemble_bootstrap !== undefined && typeof rm.ensemble_bootstrap !== "boolean") throw new ConfigError(`${where("reward_model.ensemble_bootstrap")} must be true or false, got ${JSON.stringify(rm.ensemble_bootstrap)}`);
  if (rm.held_out !== undefined && !(typeof rm.held_out === "number" && rm.held_out > 0 && rm.held_out < 1)) throw new ConfigError(`${where("reward_model.held_out")} must be a share between 0 and 1, got ${JSON.stringify(rm.held_out)}`);
  const rolloutEngine = raw.rollout_engine ?? "jax-js";
  if (!ROLLOUT_ENGINES.includes(rolloutEngine as RolloutEngineName)) throw new ConfigError(`${where("rollout_engine")} must be ${ROLLOUT_ENGINES.join(" or ")}, got ${JSON.stringify(rolloutEngine)}`);
  const policyTrainer = raw.policy_trainer ?? "dpo";
  if (!POLICY_TRAINERS.includes(policyTrainer as PolicyTrainer)) throw new ConfigError(`${where("policy_trainer")} must be ${POLICY_TRAINERS.join(", ")}, got ${JSON.stringify(policyTrainer)}`);
  const rest = mapping("rest", raw.rest ?? { type: "drop" });
  if (rest.type !== "drop" && rest.type !== "reward" && rest.type !== "judge") throw new ConfigError(`${where("rest.type")} must be drop, reward or judge, got ${JSON.stringify(rest.type)}`);
  const labeler = mapping("labeler", raw.labeler);
  if (labeler.suggestions !== undefined && labeler.type === "people" && rest.type !== "judge") {
    throw new ConfigError(`${where("labeler.suggestions")} needs an AI judge to make them: set rest: {type: judge, judge: URL, model: NAME}`);
  }
  return {
    policy: file("policy"),
    prompts: file("prompts"),
    eval_prompts: file("eval_prompts"),
    rounds: int("rounds", raw.rounds, defaults.rounds, 1),
    ...(raw.prompts_per_round !== undefined ? { prompts_per_round: int("prompts_per_round", raw.prompts_per_round, undefined, 1) } : {}),
    seed: int("seed", raw.seed, defaults.seed, 0),
    sampling: {
      k: int("sampling.k", s.k, defaults.sampling.k, 2),
      max_new_tokens: int("sampling.max_new_tokens", s.max_new_tokens, defaults.sampling.max_new_tokens, 1),
      temperature: num("sampling.temperature", s.temperature, defaults.sampling.temperature, 0),
      top_k: int("sampling.top_k", s.top_k, defaults.sampling.top_k, 0),
      top_p: num("sampling.top_p", s.top_p, defaults.sampling.top_p, 0),
      batch_size: int("sampling.batch_size", s.batch_size, defaults.sampling.batch_size, 1),
    },
    labeler: labelerConfig(labeler, where, file, scalars),
    ...(raw.label_budget !== undefined ? { label_budget: int("label_budget", raw.label_budget, undefined, 0) } : {}),
    selection: selection as Selection,
    rest: rest.type === "drop" ? { type: "drop" } : (labelerConfig(rest, (f) => where(f.replace(/^labeler/, "rest")), file, scalars) as Exclude<LabelerConfig, { type: "people" }>),
    ...(raw.gold !== undefined ? { gold: file("gold") } : {}),
    reward_model: {
      ...(rm.model !== undefined ? { model: file("reward_model.model", rm.model) } : {}),
      held_out: num("reward_model.held_out", rm.held_out, 0.2, 0),
      ...(ensemble !== undefined ? { ensemble } : {}),
      ...(rm.ensemble_bootstrap !== undefined ? { ensemble_bootstrap: rm.ensemble_bootstrap as boolean } : {}),
      args: scalars("reward_model.args", rm.args),
    },
    policy_trainer: policyTrainer as PolicyTrainer,
    dpo: scalars("dpo", raw.dpo),
    ppo: scalars("ppo", raw.ppo),
    online_dpo: scalars("online_dpo", raw.online_dpo),
    eval: {
      num_samples: int("eval.num_samples", e.num_samples, defaults.eval.num_samples, 1),
      max_new_tokens: int("eval.max_new_tokens", e.max_new_tokens, defaults.eval.max_new_tokens, 1),
      temperature: num("eval.temperature", e.temperature, defaults.eval.temperature, 0),
      seed: int("eval.seed", e.seed, defaults.eval.seed, 0),
      batch_size: int("eval.batch_size", e.batch_size, defaults.eval.batch_size, 1),
    },
    rollout_engine: rolloutEngine as RolloutEngineName,
  };
}

function suggestionsMode(value: unknown, where: (f: string) => string): { suggestions: SuggestionsMode } | undefined {
  if (value === undefined) return undefined;
  if (!SUGGESTIONS_MODES.includes(value as SuggestionsMode)) throw new ConfigError(`${where("labeler.suggestions")} must be ${SUGGESTIONS_MODES.join(" or ")}, got ${JSON.stringify(value)}`);
  return { suggestions: value as SuggestionsMode };
}

function labelerConfig(l: Record<string, unknown>, where: (f: string) => string, file: (f: string, v: unknown) => string, scalars: (f: string, v: unknown) => Record<string, Scalar>): LabelerConfig {
  if (l.type === "reward") return { type: "reward", reward: file("labeler.reward", l.reward) };
  if (l.type === "judge") {
    if (typeof l.judge !== "string" || l.judge === "") throw new ConfigError(`${where("labeler.judge")} must be an OpenAI-compatible URL or a local model path`);
    if (l.model !== undefined && typeof l.model !== "string") throw new ConfigError(`${where("labeler.model")} must be the model name the server knows`);
    return { type: "judge", judge: /^https?:\/\//.test(l.judge) ? l.judge : file("labeler.judge", l.judge), ...(l.model !== undefined ? { model: l.model } : {}), args: scalars("labeler.args", l.args) };
  }
  if (l.type === "people") {
    if (typeof l.url !== "string" || !/^https?:\/\//.test(l.url)) throw new ConfigError(`${where("labeler.url")} must be the feedback server's http(s) URL`);
    const positive = (field: string) => {
      const v = l[field];
      if (v === undefined) return undefined;
      if (typeof v !== "number" || !(v > 0)) throw new ConfigError(`${where(`labeler.${field}`)} must be a positive number`);
      return v;
    };
    return {
      type: "people",
      url: l.url.replace(/\/+$/, ""),
      ...(typeof l.api_key === "string" ? { api_key: l.api_key } : {}),
      poll_seconds: positive("poll_seconds") ?? 2,
      ...(positive("min_labels") !== undefined ? { min_labels: positive("min_labels")! } : {}),
      ...(positive("deadline_minutes") !== undefined ? { deadline_minutes: positive("deadline_minutes")! } : {}),
      project_prefix: typeof l.project_prefix === "string" ? l.project_prefix : "loop",
      ...(suggestionsMode(l.suggestions, where) ?? {}),
    };
  }
  throw new ConfigError(`${where("labeler.type")} must be reward, people or judge, got ${JSON.stringify(l.type)}`);
}
