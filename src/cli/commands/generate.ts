import type { Command } from "../command.ts";
import { baseFlag, numberFlag, parseFlags, requireFlag, UsageError } from "../command.ts";
import { disposeModel, loadModel, resolveTokenizer } from "../../models/load.ts";
import { Generator } from "../../generation/generate.ts";
import { eosIdsOf } from "../../generation/eos.ts";
import { completionText } from "../../generation/text.ts";

const usage = `Usage: rlhf generate --model PATH [--tokenizer PATH] [--prompt TEXT] [options]

Samples a continuation of the prompt (or of BOS alone) and prints the text; --json prints
{"prompt_ids", "completion_ids", "text", "logprobs"} instead. --temperature 0 is greedy.`;

const flags = {
  model: { type: "string", help: "model: a llama2.c .bin file, a Hugging Face directory or a LoRA adapter directory <PATH>" },
  ...baseFlag,
  tokenizer: { type: "string", help: "tokenizer file or directory <PATH> (default: found beside or inside the model)" },
  prompt: { type: "string", default: "", help: "text to continue <TEXT>" },
  "max-new-tokens": { type: "string", default: "256", help: "tokens to generate at most <N>" },
  temperature: { type: "string", default: "1", help: "sampling temperature, 0 = greedy <T>" },
  "top-k": { type: "string", default: "0", help: "sample among the K most likely tokens, 0 = all <K>" },
  "top-p": { type: "string", default: "1", help: "nucleus sampling mass <P>" },
  seed: { type: "string", default: "0", help: "random seed <S>" },
  stop: { type: "string", multiple: true, help: "stop when this text appears (repeatable) <TEXT>" },
  json: { type: "boolean", help: "print one JSON object instead of the text" },
} as const;

export const command: Command = {
  summary: "generate text from a model (greedy or sampled, KV-cached)",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const model = await loadModel(requireFlag(v.model, "model"), { base: v.base });
    const tokenizer = await resolveTokenizer(model, v.tokenizer);
    const promptIds = tokenizer.encode(v.prompt ?? "", { addSpecialTokens: true });
    if (promptIds.length === 0) {
      if (tokenizer.bosTokenId === null) throw new UsageError("an empty prompt needs a tokenizer with a BOS token; pass --prompt");
      promptIds.push(tokenizer.bosTokenId);
    }
    const maxNewTokens = numberFlag(v["max-new-tokens"], "max-new-tokens", 256, { min: 1, integer: true });
    if (promptIds.length >= model.arch.maxPositions) {
      throw new UsageError(`the prompt is ${promptIds.length} tokens long; the model's context is ${model.arch.maxPositions} tokens`);
    }
    const generator = new Generator(model.arch);
    const [g] = await generator.generate(
      model.params,
      [promptIds],
      {
        // Cut to the context instead of failing: the user asked for "at most" N tokens.
        maxNewTokens: Math.min(maxNewTokens, model.arch.maxPositions - promptIds.length),
        temperature: numberFlag(v.temperature, "temperature", 1, { min: 0 }),
        topK: numberFlag(v["top-k"], "top-k", 0, { min: 0, integer: true }),
        topP: numberFlag(v["top-p"], "top-p", 1, { min: 0, max: 1 }),
        seed: numberFlag(v.seed, "seed", 0, { integer: true }),
        stopStrings: v.stop ?? [],
        eosTokenIds: eosIdsOf(model, tokenizer),
      },
      tokenizer,
    );
    disposeModel(model);
    const shownPrompt = tokenizer.decode(promptIds, { skipSpecialTokens: true });
    // A stop string cuts the text, which the ids would no longer match.
    const completion = g!.finishReason === "stop" ? g!.text : completionText(tokenizer, promptIds, g!.completionIds);
    if (v.json) {
      process.stdout.write(JSON.stringify({ prompt_ids: promptIds, completion_ids: g!.completionIds, text: completion, logprobs: g!.logprobs }) + "\n");
    } else {
      process.stdout.write(shownPrompt + completion + "\n");
    }
    return 0;
  },
};
