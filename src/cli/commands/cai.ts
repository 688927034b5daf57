// `rlhf cai revise`: Constitutional AI's supervised phase, SFT data and preference pairs from critiques and revisions.
import { checkWritable, writeFileAtomic } from "../../io/atomic.ts";
import type { Command } from "../command.ts";
import { numberFlag, parseFlags, requireFlag, UsageError } from "../command.ts";
import { openSource, siblingPath, sourceFlags, throttledProgress } from "../ai-sources.ts";
import { critiqueAndRevise, DEFAULT_CAI_TEMPLATES, readCaiTemplates, type Revised } from "../../ai-feedback/cai-revise.ts";
import { LocalModel } from "../../ai-feedback/chat-model.ts";
import { drawPrinciples, readConstitution } from "../../ai-feedback/constitution.ts";
import { ItemFailure } from "../../ai-feedback/item-failure.ts";
import { concurrencyLimit, RetryableError, withRetries } from "../../ai-feedback/retry.ts";
import { readPromptFile, type PromptValue } from "../../rl/prompts.ts";
import type { ChatMessage } from "../../tokenizers/chat.ts";

const usage = `Usage: rlhf cai revise --model SRC [--model-name NAME] --constitution FILE --prompts FILE --output FILE [options]

Constitutional AI's supervised phase (Bai et al. 2022b): the model answers each prompt, then for
--rounds rounds critiques its latest answer by a principle drawn from the constitution (seeded)
and rewrites it. Writes
  OUTPUT.sft.jsonl    {"prompt", "completion": final revision, "initial", "revisions": [{"principle",
                      "critique", "revision"}]}  (rlhf sft reads prompt + completion)
  OUTPUT.pairs.jsonl  {"prompt", "chosen": final revision, "rejected": first answer}  (rlhf dpo, rm);
                      a prompt whose revision equals its first answer gives no pair
(OUTPUT's .jsonl, if any, is dropped). Records are conversational (TRL's format: a text prompt
becomes [{"role": "user", ...}], answers {"role": "assistant"} messages), as they were written: the
answer is the assistant's turn after the user's, rendered with the chat template. The constitution
is one principle per line or a JSON list of strings; the critique and revision requests are
templates with a {principle} slot (--templates, a JSON object {"critique_request",
"revision_request"}). SRC is an OpenAI-compatible base URL or a local model (llama2.c .bin, HF
directory, LoRA adapter; a conversation longer than its context keeps its latest tokens).`;

const flags = {
  model: { type: "string", help: "OpenAI-compatible base URL, or a local model path <SRC>" },
  "model-name": { type: "string", help: "model name at the URL (the request's \"model\") <NAME>" },
  constitution: { type: "string", help: "principles, one per line or a JSON list <FILE>" },
  prompts: { type: "string", help: "JSON lines with a prompt field, or .txt lines <FILE>" },
  output: { type: "string", help: "output prefix: writes OUTPUT.sft.jsonl and OUTPUT.pairs.jsonl <FILE>" },
  rounds: { type: "string", default: "1", help: "critique-and-revision rounds per prompt <N>" },
  templates: { type: "string", help: `critique and revision requests (default: ${DEFAULT_CAI_TEMPLATES.replace(/.*\/src\//, "src/")}) <FILE>` },
  temperature: { type: "string", default: "0.7", help: "sampling temperature of every answer <T>" },
  "max-tokens": { type: "string", default: "256", help: "longest answer, critique or revision <N>" },
  seed: { type: "string", default: "0", help: "seed of the principle draws and of sampling <S>" },
  ...sourceFlags,
} as const;

const asMessages = (prompt: PromptValue): ChatMessage[] => (typeof prompt === "string" ? [{ role: "user", content: prompt }] : prompt);
/** Every answer was written as the assistant's turn after the user's, so the records are conversational. */
const asCompletion = (text: string): ChatMessage[] => [{ role: "assistant", content: text }];

export const command: Command = {
  summary: "Constitutional AI: critique and revise answers by principles, write SFT records and pairs",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === "--help" || sub === "-h" || sub === undefined) {
      process.stdout.write(usage + "\n");
      return sub === undefined ? 2 : 0;
    }
    if (sub !== "revise") throw new UsageError(`unknown subcommand "${sub}" (revise)\n\n${usage}`);
    const parsed = parseFlags(rest, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const source = requireFlag(v.model, "model");
    const output = requireFlag(v.output, "output");
    const rounds = numberFlag(v.rounds, "rounds", 1, { min: 1, integer: true });
    const seed = numberFlag(v.seed, "seed", 0, { min: 0, integer: true });
    const options = {
      temperature: numberFlag(v.temperature, "temperature", 0.7, { min: 0 }),
      maxTokens: numberFlag(v["max-tokens"], "max-tokens", 256, { min: 1, integer: true }),
    };
    const retry = { retries: numberFlag(v.retries, "retries", 3, { min: 0, integer: true }), baseDelayMs: 500 };
    const concurrency = numberFlag(v.concurrency, "concurrency", 4, { min: 1, integer: true });
    const principles = readConstitution(requireFlag(v.constitution, "constitution"));
    const templates = readCaiTemplates(v.templates);
    const prompts = await readPromptFile(requireFlag(v.prompts, "prompts"));
    const [sftPath, pairsPath] = [siblingPath(output, ".sft.jsonl"), siblingPath(output, ".pairs.jsonl")];
    checkWritable(sftPath);
    checkWritable(pairsPath);

    const model = await openSource(source, v["model-name"], "model-name", v);
    const local = model instanceof LocalModel;
    const drawn = drawPrinciples(principles, prompts.length * rounds, seed);
    const limit = concurrencyLimit(local ? 1 : concurrency);
    const complete: typeof model.complete = (messages, o) =>
      limit(() => withRetries(() => model.complete(messages, o), { ...retry, onRetry: (e, n) => process.stderr.write(`cai revise: retry ${n}/${retry.retries}: ${e.message}\n`) }));
    const progress = throttledProgress("cai revise");
    let done = 0;
    let revised: (Revised | null)[];
    const failures: string[] = [];
    try {
      revised = await Promise.all(prompts.map(async (prompt, index) => {
        let r: Revised | null = null;
        try {
          // Seeds 2 · rounds + 1 apart (one answer, then a critique and a revision per round): every call has its own.
          r = await critiqueAndRevise(complete, asMessages(prompt), drawn.slice(index * rounds, (index + 1) * rounds), templates, { ...options, seed: seed + index * (2 * rounds + 1) });
        } catch (err) {
          // One prompt's failure (outlasted retries, too long for the model) is reported, not fatal.
          if (!(err instanceof RetryableError || err instanceof ItemFailure)) throw err;
          failures.push(`prompt ${index + 1}: ${err.message}`);
        }
        progress(`${++done}/${prompts.length} prompts (${failures.length} failed)`, done === prompts.length);
        return r;
      }));
    } finally {
      model.dispose();
    }

    const finished = prompts.flatMap((prompt, i) => (revised[i] ? [{ prompt: asMessages(prompt), r: revised[i]! }] : []));
    const sft = finished.map(({ prompt, r }) => ({ prompt, completion: asCompletion(r.final), initial: r.initial, revisions: r.rounds }));
    const pairs = finished.flatMap(({ prompt, r }) => (r.final === r.initial ? [] : [{ prompt, chosen: asCompletion(r.final), rejected: asCompletion(r.initial) }]));
    await writeFileAtomic(sftPath, sft.map((r) => JSON.stringify(r) + "\n").join(""));
    await writeFileAtomic(pairsPath, pairs.map((r) => JSON.stringify(r) + "\n").join(""));
    const truncated = local ? `; ${model.truncatedPrompts} conversations cut to the model's context` : "";
    for (const f of failures) process.stderr.write(`cai revise: failed: ${f}\n`);
    process.stderr.write(`cai revise: wrote ${sft.length} SFT records to ${sftPath} and ${pairs.length} pairs to ${pairsPath} (${sft.length - pairs.length} prompts unchanged by revision, ${failures.length} failed${truncated})\n`);
    return sft.length === 0 ? 1 : 0;
  },
};
