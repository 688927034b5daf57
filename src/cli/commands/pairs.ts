// `rlhf pairs`: preference data from a policy and a reward (src/rl/pairs.ts), for DPO or a reward model.
import { checkWritable, writeFileAtomic } from "../../io/atomic.ts";
import type { Command } from "../command.ts";
import { baseFlag, numberFlag, parseFlags, requireFlag, requireRepeated, UsageError } from "../command.ts";
import { disposeModel, resolveTokenizer } from "../../models/load.ts";
import { eosIdsOf } from "../../generation/eos.ts";
import { loadRewardSource } from "../../rl/reward-source.ts";
import { ensembleFlags, ensembleOptionsOf, normaliseEnsembleFlags } from "../ensemble-flags.ts";
import { readPromptFile } from "../../rl/prompts.ts";
import { preferenceRecords, sampleScored } from "../../rl/pairs.ts";
import { checkRoom, loadCausalLm, samplingFlags, samplingSettings } from "./eval.ts";

const FORMATS = ["preference", "ranking"] as const;

const usage = `Usage: rlhf pairs --policy PATH --reward SRC --prompts FILE --k K --output FILE [options]

Samples K completions per prompt from the policy (seeded: the same flags give the same file),
scores them with the reward, and writes one JSON line per prompt:
  --format preference (default)  {"prompt", "chosen", "rejected", "score_chosen", "score_rejected"}:
                                 the best-scored completion against the worst, TRL's preference
                                 format with an explicit prompt (what rlhf dpo and rlhf rm train read)
  --format ranking               {"prompt", "responses", "ranking", "ties", "scores"}: all K, ranking
                                 lists indices best first, ties pairs equal scores
For chat prompts, "prompt" is the message list and completions are [{"role": "assistant",
"content": ...}]. A completion cut off at --max-new-tokens is marked ("chosen_truncated",
"rejected_truncated": true, or "truncated": [per response]), and rlhf dpo and rlhf kto then give
it no EOS: an unfinished text did not end. Prompts whose K completions all score the same carry no
preference and are skipped (the count is printed). The reward is a reward-model directory, an
ensemble directory (reduced by --ensemble_reduce) or a .mjs/.ts module
exporting \`reward(prompts, completions)\`; several --reward flags are summed (PATH@WEIGHT).`;

const flags = {
  policy: { type: "string", help: "the model to sample from: llama2.c .bin, HF directory or LoRA adapter directory <PATH>" },
  ...baseFlag,
  reward: { type: "string", multiple: true, help: "reward source: RM or ensemble directory or .mjs/.ts module, PATH@WEIGHT to weight (repeatable) <SRC>" },
  ...ensembleFlags,
  prompts: { type: "string", help: "JSON lines with a prompt field, or .txt lines <FILE>" },
  output: { type: "string", help: "JSON-lines file to write <FILE>" },
  k: { type: "string", default: "4", help: "completions per prompt, at least 2 <K>" },
  format: { type: "string", default: "preference", help: "preference (best vs worst) or ranking (all K) <NAME>" },
  tokenizer: { type: "string", help: "policy tokenizer <PATH> (default: found with the policy)" },
  ...samplingFlags,
} as const;

export const command: Command = {
  summary: "sample K completions per prompt, score them, write chosen/rejected preference data",
  async run(argv) {
    const parsed = parseFlags(normaliseEnsembleFlags(argv), usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const rewardSpecs = requireRepeated(v.reward, "reward");
    const output = requireFlag(v.output, "output");
    const format = v.format ?? "preference";
    if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(", ")}, got "${format}"`);
    const settings = { ...samplingSettings(v), k: numberFlag(v.k, "k", 4, { min: 2, integer: true }) };
    const prompts = await readPromptFile(requireFlag(v.prompts, "prompts"));
    checkWritable(output);

    const policy = await loadCausalLm(v.policy, "policy", v.base);
    checkRoom(settings.max_new_tokens, policy, "max-new-tokens");
    const tokenizer = await resolveTokenizer(policy, v.tokenizer);
    const eosIds = eosIdsOf(policy, tokenizer);
    if (eosIds.length === 0) throw new UsageError("the policy has no EOS token id (config eos_token_id or tokenizer)");
    const reward = await loadRewardSource(rewardSpecs, ensembleOptionsOf(v));
    settings.batch_size = Math.min(settings.batch_size, prompts.length);

    const scored = await sampleScored({
      arch: policy.arch,
      params: policy.params,
      tokenizer,
      prompts,
      reward,
      eosIds,
      settings,
      onBatch: (done) => process.stderr.write(`pairs: ${done}/${prompts.length} prompts\n`),
    });
    reward.dispose();
    disposeModel(policy);
    const { records, tied } = preferenceRecords(scored, format as (typeof FORMATS)[number]);
    await writeFileAtomic(output, records.map((r) => JSON.stringify(r) + "\n").join(""));
    process.stderr.write(`pairs: wrote ${records.length} ${format} records to ${output}; skipped ${tied} prompt${tied === 1 ? "" : "s"} whose ${settings.k} completions all scored the same\n`);
    return 0;
  },
};
