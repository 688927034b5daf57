// What the configs of the reference-based preference trainers (trl.DPOConfig, trl.KTOConfig) share
// beyond TrainingArguments: TRL's length limits, and their learning rate (1e-6 in both).
import { dropoutSpecs, peftSpecs, trainingDefaults, trainingSpecs, type Specs, type TrainingArguments } from "./config.ts";
import { peftDefaults, type DropoutField, type PeftFields } from "./peft-config.ts";

/** With ModelConfig's LoRA fields, and TRL's disable_dropout (true for both). */
export interface PreferenceTrainingArguments extends TrainingArguments, PeftFields, DropoutField {
  /** Longest prompt + completion in tokens; completions are cut to fit. null = the model's context. */
  max_length: number | null;
  /** Longest prompt in tokens, cut from the left; null = no separate limit. */
  max_prompt_length: number | null;
  /** Longest completion in tokens, cut from the right; null = no separate limit. */
  max_completion_length: number | null;
}

export const preferenceTrainingDefaults: PreferenceTrainingArguments = {
  ...trainingDefaults,
  ...peftDefaults,
  disable_dropout: true,
  learning_rate: 1e-6,
  max_length: 1024,
  max_prompt_length: 512,
  max_completion_length: null,
};

export const preferenceTrainingSpecs: Specs<PreferenceTrainingArguments> = {
  ...trainingSpecs,
  ...peftSpecs,
  ...dropoutSpecs,
  max_length: { kind: "int", min: 2, nullable: true, help: "longest prompt + completion; completions are cut to fit" },
  max_prompt_length: { kind: "int", min: 1, nullable: true, help: "longest prompt, cut from the left" },
  max_completion_length: { kind: "int", min: 1, nullable: true, help: "longest completion, cut from the right" },
};
