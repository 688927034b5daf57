// Typed trainer configs with TRL's field names and defaults (TrainingArguments + SFTConfig /
// RewardConfig; DPO's and KTO's build on preference-config.ts), loaded from defaults < a
// JSON/YAML file < command-line flags. Every field has a spec (kind, range, help), and the spec
// tables are typed so that a field without one fails to compile.
import { readInputText } from "../io/text-file.ts";
import { parse as parseYaml } from "yaml";
import type { ScheduleName } from "../engine/schedule.ts";
import { optimizerDefaults, type OptimizerFields } from "./optimizer.ts";
import { peftDefaults, type DropoutField, type PeftFields } from "./peft-config.ts";
import { monitorDefaults, type MonitorFields } from "./monitor-config.ts";
import { defaultEnsembleOptions, ENSEMBLE_REDUCES, type EnsembleOptions } from "../algorithms/ensemble-reward.ts";
import { InputError } from "../io/errors.ts";

/** The fields every trainer shares (transformers' TrainingArguments, the subset we honour). */
export interface TrainingArguments extends OptimizerFields {
  /** Sequences (SFT) or preference records (RM) per micro-batch. */
  per_device_train_batch_size: number;
  per_device_eval_batch_size: number;
  /** Micro-batches whose gradients are averaged into one optimizer step. */
  gradient_accumulation_steps: number;
  /** Passes over the training split (fractions allowed); ignored when max_steps > 0. */
  num_train_epochs: number;
  /** Optimizer steps to run; -1 = derive from num_train_epochs. */
  max_steps: number;
  lr_scheduler_type: ScheduleName;
  /** Linear warmup steps; when 0, warmup_ratio × total steps is used. */
  warmup_steps: number;
  warmup_ratio: number;
  /** Log train metrics (metrics.jsonl, plain log lines) every this many steps. */
  logging_steps: number;
  /** Evaluate on the held-out split every this many steps; null = logging_steps. Always at the end. */
  eval_steps: number | null;
  /** Write DIR/checkpoint-N every this many steps; a final checkpoint is always written. */
  save_steps: number;
  /** Keep at most this many checkpoints (oldest deleted first); null = keep all. */
  save_total_limit: number | null;
  /** Seeds the data order and the held-out split (and the reward head's init). */
  seed: number;
  /** Share of the records held out for evaluation when no eval file is given (0 = none). Not in TRL. */
  eval_split_ratio: number;
}

/** trl.SFTConfig, with ModelConfig's LoRA fields. */
export interface SFTConfig extends TrainingArguments, PeftFields {
  /** Tokens per sequence; longer examples are truncated (their tail dropped). */
  max_length: number;
  /** Pack several examples into each max_length row (attention stays within each example). */
  packing: boolean;
  /** Train on completion tokens only (prompt tokens masked). TRL's None means true for prompt-completion data. */
  completion_only_loss: boolean;
}

/** trl.RewardConfig, with ModelConfig's LoRA fields. */
export interface RewardConfig extends TrainingArguments, PeftFields, DropoutField {
  /** Longest chosen/rejected sequence, prompt included; longer pairs are dropped (as TRL does). */
  max_length: number;
  /** Weight of coef · mean((r_c + r_r)²), which pulls rewards towards zero mean; null = off. */
  center_rewards_coefficient: number | null;
  /**
   * Over-long sequences: "drop" their pairs (TRL's RewardTrainer), or "keep_end": keep BOS and the
   * last max_length − 1 tokens, so the response and the latest turns survive (long chats, HH-RLHF).
   */
  truncation_mode: "drop" | "keep_end";
}

// Defaults are transformers' TrainingArguments defaults, with TRL's overrides (logging_steps 10;
// each trainer's learning_rate: 2e-5 for SFT, 1e-5 for reward models, 1e-6 for DPO and KTO).
export const trainingDefaults: TrainingArguments = {
  learning_rate: 5e-5,
  per_device_train_batch_size: 8,
  per_device_eval_batch_size: 8,
  gradient_accumulation_steps: 1,
  num_train_epochs: 3,
  max_steps: -1,
  lr_scheduler_type: "linear",
  warmup_steps: 0,
  warmup_ratio: 0,
  ...optimizerDefaults,
  logging_steps: 10,
  eval_steps: null,
  save_steps: 500,
  save_total_limit: null,
  seed: 42,
  eval_split_ratio: 0.05,
};

export const defaultSFTConfig: SFTConfig = { ...trainingDefaults, ...peftDefaults, learning_rate: 2e-5, max_length: 1024, packing: false, completion_only_loss: true };
export const defaultRewardConfig: RewardConfig = { ...trainingDefaults, ...peftDefaults, disable_dropout: true, learning_rate: 1e-5, max_length: 1024, center_rewards_coefficient: null, truncation_mode: "drop" };
export interface FieldSpec {
  /** "names": a list of names, from a list in a file or comma-separated text (`q_proj,v_proj`). */
  kind: "int" | "number" | "bool" | "choice" | "names";
  nullable?: boolean;
  min?: number;
  max?: number;
  choices?: readonly string[];
  help: string;
}

export type Specs<C> = { [K in keyof C]-?: FieldSpec };

/** The optimizer's fields, shared by every trainer. */
export const optimizerSpecs: Specs<OptimizerFields> = {
  learning_rate: { kind: "number", min: 0, help: "peak learning rate" },
  weight_decay: { kind: "number", min: 0, help: "AdamW weight decay (biases and norm weights exempt)" },
  adam_beta1: { kind: "number", min: 0, max: 1, help: "AdamW beta1" },
  adam_beta2: { kind: "number", min: 0, max: 1, help: "AdamW beta2" },
  adam_epsilon: { kind: "number", min: 0, help: "AdamW epsilon" },
  max_grad_norm: { kind: "number", min: 0, help: "clip the gradient norm to this, 0 = off" },
};

/** ModelConfig's LoRA fields, for every trainer that can train an adapter (train/peft-config.ts). */
export const peftSpecs: Specs<PeftFields> = {
  use_peft: { kind: "bool", help: "train a LoRA adapter on the frozen model (PEFT's files)" },
  lora_r: { kind: "int", min: 1, help: "LoRA rank" },
  lora_alpha: { kind: "number", min: 0, help: "LoRA alpha (the update is scaled by alpha / r)" },
  lora_dropout: { kind: "number", min: 0, max: 0.99, help: "dropout on the adapter's input" },
  lora_target_modules: { kind: "names", nullable: true, help: "modules to adapt (q_proj,v_proj,… or all-linear; default: PEFT's for the model type)" },
  lora_modules_to_save: { kind: "names", nullable: true, help: "modules trained whole and saved with the adapter" },
  use_rslora: { kind: "bool", help: "rsLoRA: scale by alpha / sqrt(r)" },
};

export const dropoutSpecs: Specs<DropoutField> = {
  disable_dropout: { kind: "bool", help: "train without dropout (LoRA's lora_dropout)" },
};

/** The reward-hacking monitors' fields (monitor-config.ts), for every on-policy trainer. */
const threshold = (help: string, max?: number): FieldSpec => ({ kind: "number", min: 0, ...(max !== undefined ? { max } : {}), nullable: true, help: `${help}; null = off` });
export const monitorSpecs: Specs<MonitorFields> = {
  monitor_action: { kind: "choice", choices: ["warn", "checkpoint", "stop"], help: "what a monitor firing does: warn (events.jsonl and console), checkpoint (keep that step's weights), stop (end the run, DIR/policy = last checkpoint before it)" },
  monitor_window: { kind: "int", min: 2, help: "steps in the monitors' rolling baselines" },
  monitor_length_jump: threshold("fire when mean completion length is above this times its rolling median (or below its inverse)"),
  monitor_kl_ceiling: threshold("fire when KL to the reference per token (nats) is above this"),
  monitor_kl_acceleration: threshold("fire when KL's rise over the last window is this many times the window before's"),
  monitor_entropy_collapse: threshold("fire when entropy per token falls below this share of its first steps' mean", 1),
  monitor_reward_ood: threshold("fire when this share of a step's scores is outside the reward model's training [p1, p99]", 1),
  monitor_repetition: threshold("fire when distinct-2 of a step's completions falls below this share of its first steps' mean", 1),
  monitor_truncated_share: threshold("fire when this share of completions ends without EOS", 1),
  monitor_approxkl_spike: threshold("fire when the updates' approximate KL is this many times its rolling median"),
  monitor_clipfrac_spike: threshold("fire when the updates' clipped share is this many times its rolling median"),
  monitor_value_loss_blowup: threshold("fire when the value loss is this many times its rolling median"),
  monitor_rm_disagreement: threshold("fire when a reward-model ensemble's members' std is this many times its first steps' mean while the mean score rises"),
};

/** How a reward-model ensemble's members' scores become one (algorithms/ensemble-reward.ts): the RL trainers' fields, eval's and pairs' flags. */
export const ensembleSpecs: Specs<EnsembleOptions> = {
  ensemble_reduce: { kind: "choice", choices: [...ENSEMBLE_REDUCES], help: "a reward-model ensemble's score: mean of its members, min (worst case), or uwo (mean − uwo_lambda · variance; Coste et al. 2023)" },
  uwo_lambda: { kind: "number", min: 0, help: "with ensemble_reduce uwo: the weight of the members' variance" },
};

/** The run's bookkeeping, the same for offline and on-policy trainers. */
const runSpecs: Specs<Pick<TrainingArguments, "logging_steps" | "save_steps" | "save_total_limit" | "seed">> = {
  logging_steps: { kind: "int", min: 1, help: "log metrics every N steps" },
  save_steps: { kind: "int", min: 1, help: "checkpoint every N steps" },
  save_total_limit: { kind: "int", min: 1, nullable: true, help: "keep at most N checkpoints (oldest deleted)" },
  seed: { kind: "int", min: 0, help: "random seed" },
};

/** TrainingArguments' specs, which every offline trainer's specs extend. */
export const trainingSpecs: Specs<TrainingArguments> = {
  ...optimizerSpecs,
  per_device_train_batch_size: { kind: "int", min: 1, help: "examples per micro-batch" },
  per_device_eval_batch_size: { kind: "int", min: 1, help: "examples per evaluation batch" },
  gradient_accumulation_steps: { kind: "int", min: 1, help: "micro-batches per optimizer step" },
  num_train_epochs: { kind: "number", min: 0, help: "passes over the training data" },
  max_steps: { kind: "int", min: -1, help: "optimizer steps, -1 = from num_train_epochs" },
  lr_scheduler_type: { kind: "choice", choices: ["linear", "cosine", "constant", "constant_with_warmup"], help: "learning-rate schedule" },
  warmup_steps: { kind: "int", min: 0, help: "linear warmup steps" },
  warmup_ratio: { kind: "number", min: 0, max: 1, help: "warmup as a share of all steps (when warmup_steps is 0)" },
  ...runSpecs,
  eval_steps: { kind: "int", min: 1, nullable: true, help: "evaluate every N steps (default: logging_steps)" },
  eval_split_ratio: { kind: "number", min: 0, max: 0.9, help: "share held out for evaluation when no --eval-data is given" },
};

export const sftSpecs: Specs<SFTConfig> = {
  ...trainingSpecs,
  ...peftSpecs,
  max_length: { kind: "int", min: 2, help: "tokens per sequence (longer examples are truncated)" },
  packing: { kind: "bool", help: "pack several examples into each row" },
  completion_only_loss: { kind: "bool", help: "loss on completion tokens only" },
};

export const rewardSpecs: Specs<RewardConfig> = {
  ...trainingSpecs,
  ...peftSpecs,
  ...dropoutSpecs,
  max_length: { kind: "int", min: 2, help: "longest sequence; longer pairs are dropped" },
  center_rewards_coefficient: { kind: "number", min: 0, nullable: true, help: "weight of the reward-centring term" },
  truncation_mode: { kind: "choice", choices: ["drop", "keep_end"], help: "over-long pairs: drop them, or keep BOS + the last max_length-1 tokens" },
};

/** The fields every on-policy trainer shares (ppo, grpo, rloo, online-dpo): optimizer, LoRA, sampling, run bookkeeping. */
export interface OnPolicyRunFields extends OptimizerFields, PeftFields, MonitorFields, EnsembleOptions {
  /** Prompts per step. */
  batch_size: number;
  /** Steps (generation + updates) to run. */
  total_steps: number;
  /** Anneal the learning rate linearly to 0 over the run, or keep it. */
  lr_scheduler_type: "linear" | "constant";
  seed: number;
  top_k: number;
  top_p: number;
  save_steps: number;
  save_total_limit: number | null;
  logging_steps: number;
  sample_steps: number;
}

export const onPolicyRunDefaults: Omit<OnPolicyRunFields, "learning_rate"> = {
  ...optimizerDefaults,
  ...peftDefaults,
  ...monitorDefaults,
  ...defaultEnsembleOptions,
  batch_size: 8,
  total_steps: 100,
  lr_scheduler_type: "linear",
  seed: 0,
  top_k: 0,
  top_p: 1,
  save_steps: 25,
  save_total_limit: null,
  logging_steps: 1,
  sample_steps: 10,
};

export const onPolicyRunSpecs: Specs<OnPolicyRunFields> = {
  ...optimizerSpecs,
  ...peftSpecs,
  learning_rate: { kind: "number", min: 0, help: "peak learning rate (annealed linearly by default)" },
  batch_size: { kind: "int", min: 1, help: "prompts per step" },
  total_steps: { kind: "int", min: 1, help: "steps (generation + updates)" },
  top_k: { kind: "int", min: 0, help: "top-k sampling, 0 = off" },
  top_p: { kind: "number", min: 0, max: 1, help: "nucleus sampling" },
  lr_scheduler_type: { kind: "choice", choices: ["linear", "constant"], help: "learning-rate schedule: linear (to 0 at total_steps) or constant" },
  ...runSpecs,
  sample_steps: { kind: "int", min: 1, help: "write sample completions every N steps" },
  ...monitorSpecs,
  ...ensembleSpecs,
};

/** A config error that names its source (file, or `--flag`) and field; the CLI prints it without a stack. */
export class ConfigError extends InputError {}

/** Checks and converts one value; strings (from flags) are parsed by the field's kind. */
function coerce(spec: FieldSpec, raw: unknown, where: string): unknown {
  if (raw === null || raw === "null" || raw === "none" || raw === "None") {
    if (spec.nullable) return null;
    throw new ConfigError(`${where} must not be null`);
  }
  let v = raw;
  if (spec.kind === "bool") {
    if (v === "true") v = true;
    else if (v === "false") v = false;
    if (typeof v !== "boolean") throw new ConfigError(`${where} must be true or false, got ${JSON.stringify(raw)}`);
    return v;
  }
  if (spec.kind === "names") {
    const names = typeof v === "string" ? v.split(",").map((n) => n.trim()) : v;
    if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === "string" && n !== "")) throw new ConfigError(`${where} must be names separated by commas, or a list of names, got ${JSON.stringify(raw)}`);
    return names;
  }
  if (spec.kind === "choice") {
    if (typeof v !== "string" || !spec.choices!.includes(v)) throw new ConfigError(`${where} must be one of ${spec.choices!.join(", ")}, got ${JSON.stringify(raw)}`);
    return v;
  }
  if (typeof v === "string" && v.trim() !== "") v = Number(v);
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(`${where} must be a number, got ${JSON.stringify(raw)}`);
  if (spec.kind === "int" && !Number.isInteger(v)) throw new ConfigError(`${where} must be an integer, got ${JSON.stringify(raw)}`);
  if (spec.min !== undefined && v < spec.min) throw new ConfigError(`${where} must be at least ${spec.min}, got ${v}`);
  if (spec.max !== undefined && v > spec.max) throw new ConfigError(`${where} must be at most ${spec.max}, got ${v}`);
  return v;
}

/** Reads a JSON or YAML config file (by extension; YAML is a superset of JSON, so others parse as YAML). */
export function readConfigFile(path: string): Record<string, unknown> {
  const text = readInputText(path, "config file");
  let parsed: unknown;
  try {
    parsed = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path}: not valid ${path.endsWith(".json") ? "JSON" : "YAML"} (${(err as Error).message})`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) throw new ConfigError(`${path}: expected a mapping of config fields, got ${Array.isArray(parsed) ? "a list" : typeof parsed}`);
  return parsed as Record<string, unknown>;
}

/**
 * defaults < file < overrides. File keys and override keys must be fields of the config; errors
 * name the file and field, or the flag. Override values may be strings (from the command line).
 */
export function resolveConfig<C extends object>(
  defaults: C,
  specs: Specs<C>,
  options: { file?: string; overrides?: Record<string, unknown> } = {},
): C {
  const config = { ...defaults } as Record<string, unknown>;
  const apply = (values: Record<string, unknown>, where: (key: string) => string) => {
    for (const [key, raw] of Object.entries(values)) {
      const spec = (specs as Record<string, FieldSpec>)[key];
      if (!spec) throw new ConfigError(`${where(key)} is not a config field (known: ${Object.keys(specs).join(", ")})`);
      config[key] = coerce(spec, raw, where(key));
    }
  };
  if (options.file) apply(readConfigFile(options.file), (key) => `${options.file}: ${key}`);
  apply(options.overrides ?? {}, (key) => `--${key}`);
  return config as unknown as C;
}

/** The config's fields as CLI flags (`--learning_rate`), for parseFlags; `--learning-rate` is accepted too (see normaliseFlagNames). */
export function configFlags(specs: Record<string, FieldSpec>, defaults: object): Record<string, { type: "string"; help: string }> {
  return Object.fromEntries(
    Object.entries(specs).map(([name, spec]) => [name, { type: "string" as const, help: `${spec.help} (default: ${JSON.stringify((defaults as Record<string, unknown>)[name])}) <${{ bool: "BOOL", choice: "NAME", names: "NAMES", int: "N", number: "N" }[spec.kind]}>` }]),
  );
}

/**
 * Rewrites `--learning-rate` to `--learning_rate` for config fields, as HfArgumentParser accepts
 * both, and a true/false field given without a value (`--use_peft --lora_r 8`) to `--use_peft=true`.
 */
export function normaliseFlagNames(argv: string[], specs: Record<string, FieldSpec>): string[] {
  return argv.map((arg, i) => {
    const m = /^--([a-z0-9_-]+)(=.*)?$/.exec(arg);
    if (!m) return arg;
    const underscored = m[1]!.replaceAll("-", "_");
    if (!(underscored in specs)) return arg;
    const next = argv[i + 1];
    const bare = m[2] === undefined && specs[underscored]!.kind === "bool" && (next === undefined || next.startsWith("--"));
    return `--${underscored}${m[2] ?? (bare ? "=true" : "")}`;
  });
}

/** Picks the config fields out of parsed flag values. */
export function configOverrides(values: Record<string, unknown>, specs: Record<string, FieldSpec>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([k, v]) => k in specs && v !== undefined));
}

/** Optimizer steps for a run, and the warmup in steps (warmup_steps wins over warmup_ratio, as in HF). */
export function stepPlan(config: TrainingArguments, stepsPerEpoch: number): { totalSteps: number; warmupSteps: number } {
  const totalSteps = config.max_steps > 0 ? config.max_steps : Math.ceil(config.num_train_epochs * stepsPerEpoch);
  const warmupSteps = config.warmup_steps > 0 ? config.warmup_steps : Math.ceil(config.warmup_ratio * totalSteps);
  return { totalSteps, warmupSteps };
}
