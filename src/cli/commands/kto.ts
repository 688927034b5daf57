import { preferenceCommand } from "../preference-command.ts";
import { fitKtoExample, readKtoData, type KtoExample } from "../../data/kto-data.ts";
import { checkKTOConfig, defaultKTOTrainingConfig, ktoSpecs } from "../../train/kto-config.ts";
import { ktoItem, ktoLayout, ktoMeans, ktoTask, ktoWeightAdvice, withKlSplits } from "../../train/kto.ts";

const usage = `Usage: rlhf kto --model PATH --data FILE --output DIR [--ref-model PATH] [--eval-data FILE] [--config FILE] [--resume] [options]

Kahneman-Tversky Optimisation (TRL's KTOTrainer): learns from completions labelled desirable or
undesirable, without pairs. Each one's log-ratio to a frozen reference model (the starting model,
or --ref-model) is pushed above (desirable) or below (undesirable) a reference point, the policy's
KL from the reference estimated in each batch on prompts paired with other examples' completions.
loss_type: kto, or apo_zero_unpaired (reference point 0). Data: JSON lines with "prompt" +
"completion" + "label" (true = desirable; strings or message lists), or preference pairs
("prompt"? + "chosen" + "rejected", each one desirable and one undesirable example), or the
rt-polarity folder (positive sentences desirable). Only completion tokens are scored; the reference
log-probs are computed once before training. Without --eval-data, eval_split_ratio of the records
is held out (seeded; a pair stays whole). Checkpoints go to DIR/checkpoint-N every save_steps and at
the end, the final model to DIR, metrics (kl, rewards/chosen_sum, rewards/rejected_sum,
logps/chosen_sum, logps/rejected_sum, count/chosen, count/rejected, loss, and eval_ versions) to
DIR/metrics.jsonl; --resume continues from the latest checkpoint exactly. --use_peft trains a LoRA
adapter on the frozen model (the reference: the model with the adapter off; PEFT adapter
directories; dropout off unless --disable_dropout false, as TRL). Config fields are TRL's
(defaults below), set by --config FILE (JSON or YAML) or by flags.`;

const count = (xs: readonly KtoExample[]) => `${xs.filter((e) => e.label).length} desirable + ${xs.filter((e) => !e.label).length} undesirable`;

export const command = preferenceCommand({
  name: "kto",
  summary: "Kahneman-Tversky optimisation on desirable/undesirable completions (or unpaired preference pairs)",
  usage,
  dataHelp: "labelled completions or preference pairs: JSON lines (.jsonl, .jsonl.gz), .json, or the rt-polarity folder <FILE>",
  unit: "examples",
  defaults: defaultKTOTrainingConfig,
  specs: ktoSpecs,
  check: checkKTOConfig,
  read: readKtoData,
  fit: fitKtoExample,
  prepare: (data, config, arch, say) => {
    const advice = ktoWeightAdvice(data.train, config);
    if (advice) say(advice);
    return withKlSplits(data, config, arch);
  },
  layout: () => ktoLayout,
  withReference: ktoItem,
  task: ktoTask,
  describe: (data, config) => `${data.train.length} training examples (${count(data.train)}), ${data.eval.length} held out; loss_type ${config.loss_type}, beta ${config.beta}`,
  outcome: (history) => {
    const last = history.filter((r) => "eval_kl" in r).at(-1);
    const m = last ? ktoMeans(last, "eval_") : null;
    return m ? ` (held-out rewards/chosen ${m.chosen.toFixed(4)}, rewards/rejected ${m.rejected.toFixed(4)}, margin ${m.margin.toFixed(4)}, kl ${m.kl.toFixed(4)})` : "";
  },
});
