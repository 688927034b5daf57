import { preferenceCommand } from "../preference-command.ts";
import { fitDpoExample, readDpoData } from "../../data/dpo-data.ts";
import { checkDPOConfig, defaultDPOConfig, dpoSpecs } from "../../train/dpo-config.ts";
import { dpoLayout, dpoPair, dpoTask } from "../../train/dpo.ts";

const usage = `Usage: rlhf dpo --model PATH --data FILE --output DIR [--ref-model PATH] [--eval-data FILE] [--config FILE] [--resume] [options]

Direct Preference Optimisation (TRL's DPOTrainer): raises the policy's log-odds of each chosen
completion over the rejected one, measured against a frozen reference model (the starting model,
or --ref-model), whose log-probs are computed once before training. loss_type: sigmoid (DPO, with
label_smoothing as cDPO), robust (unbiased under label noise), hinge (SLiC), ipo (IPO, on
length-averaged log-probs). Data: JSON lines with "prompt"+"chosen"+"rejected" (strings or
message lists), or only "chosen"+"rejected" (the shared beginning is the prompt), or the
rt-polarity folder (positive over negative, empty prompt). Only completion tokens are scored.
Without --eval-data, eval_split_ratio of the pairs is held out (seeded). Checkpoints go to
DIR/checkpoint-N every save_steps and at the end, the final model to DIR, metrics (rewards/chosen,
rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected, loss, and
eval_ versions) to DIR/metrics.jsonl; --resume continues from the latest checkpoint exactly.
--use_peft trains a LoRA adapter on the frozen model instead (TRL's lora_* fields; dropout off
unless --disable_dropout false, as TRL): the reference is the model itself with the adapter off, and
checkpoints and DIR are PEFT adapter directories.
Config fields are TRL's (defaults below), set by --config FILE (JSON or YAML) or by flags.`;

export const command = preferenceCommand({
  name: "dpo",
  summary: "direct preference optimisation (sigmoid, ipo, hinge, robust) against a frozen reference",
  usage,
  dataHelp: "preference pairs: JSON lines (.jsonl, .jsonl.gz), .json, or the rt-polarity folder <FILE>",
  unit: "pairs",
  defaults: defaultDPOConfig,
  specs: dpoSpecs,
  check: checkDPOConfig,
  read: (path, tokenizer) => readDpoData(path, tokenizer).map((pair) => [pair]),
  fit: fitDpoExample,
  prepare: (data) => data,
  layout: dpoLayout,
  withReference: dpoPair,
  task: dpoTask,
  describe: (data, config) => `${data.train.length} training pairs, ${data.eval.length} held out; loss_type ${config.loss_type}, beta ${config.beta}`,
  outcome: (history) => {
    const last = history.filter((r) => "eval_rewards/accuracies" in r).at(-1);
    return last ? ` (held-out reward accuracy ${last["eval_rewards/accuracies"]!.toFixed(4)}, margin ${last["eval_rewards/margins"]!.toFixed(4)})` : "";
  },
});
