// `rlhf judge`: AI preference labels (RLAIF) from an OpenAI-compatible server or a local model.
import { checkWritable, writeFileAtomic } from "../../io/atomic.ts";
import type { Command } from "../command.ts";
import { numberFlag, parseFlags, requireFlag, UsageError } from "../command.ts";
import { openSource, siblingPath, sourceFlags, throttledProgress } from "../ai-sources.ts";
import { LocalModel } from "../../ai-feedback/chat-model.ts";
import { drawPrinciples, readConstitution } from "../../ai-feedback/constitution.ts";
import { JudgeCache } from "../../ai-feedback/judge-cache.ts";
import { readJudgeItems } from "../../ai-feedback/judge-data.ts";
import { agreementWithPeople, comparisonsOf, judgeName, pairRecord, rankingRecord, runComparisons, type ComparisonResult } from "../../ai-feedback/judge-run.ts";
import { answerPrefix, DEFAULT_TEMPLATE_FILE, readJudgeTemplate } from "../../ai-feedback/judge-template.ts";
import { logprobJudge, textJudge } from "../../ai-feedback/judges.ts";

const FORMATS = ["pairs", "ranking"] as const;

const usage = `Usage: rlhf judge --judge SRC [--judge-model NAME] --data FILE --output FILE [options]

Labels preferences with an AI judge. --data holds {"prompt", "responses": [...]} records (the
feedback app's import format; all K(K-1)/2 pairs are judged) or {"prompt"?, "chosen", "rejected"}
pairs to re-label. Every pair is asked in both orders (A, B) and (B, A) so position bias cancels:
an order-consistent verdict is the label; one order a tie ([[C]]) and the other a side gives that
side at confidence 0.75; orders that disagree give a tie. Output (--format pairs): one record per
pair, {"prompt", "chosen", "rejected", "judge", "confidence", "order": {"ab", "ba"}, "rationale"},
with "tie": true for ties and disagreements (rlhf dpo, rm and kto skip those); --format ranking:
one {"prompt", "responses", "ranking", "ties"?, "scores"} record per item, ranked by Copeland score
(wins + 1/2 per tie), equal scores by summed probability of being better.

SRC is an OpenAI-compatible base URL (http://host:port/v1; POST /chat/completions, temperature 0;
the verdict is the one of [[A]], [[B]], [[C]] the answer contains, anything else is asked again and
after --retries recorded as failed) or a local model (llama2.c .bin, HF directory, LoRA adapter:
the verdict is the likelier of the answers "A" and "B" after the prompt and "[[", confidence their
normalised probability). Templates are FastChat judge_prompts.jsonl lines, --template FILE:NAME
(e.g. ../shared/data/mt-bench/judge_prompts.jsonl:pair-v2). With --constitution, one principle is
drawn per pair (seeded) and put in the template's {principle} (or appended to its system prompt).
Answers are cached (--cache), so a rerun asks nothing twice. When the data carries people's labels
(pairs, or responses with a "ranking"), agreement and Cohen's kappa are reported. A JSON summary is
printed and written to OUTPUT.summary.json, with every failed comparison.`;

const flags = {
  judge: { type: "string", help: "OpenAI-compatible base URL, or a local model path <SRC>" },
  "judge-model": { type: "string", help: "model name at the URL (the request's \"model\") <NAME>" },
  data: { type: "string", help: "JSON lines of {prompt, responses} or {prompt?, chosen, rejected} <FILE>" },
  output: { type: "string", help: "JSON-lines file to write <FILE>" },
  template: { type: "string", help: `judge_prompts-style JSON lines, FILE:NAME picks one (default: ${DEFAULT_TEMPLATE_FILE.replace(/.*\/src\//, "src/")}:pair-rlhf) <FILE>` },
  constitution: { type: "string", help: "principles, one per line or a JSON list; one drawn per pair <FILE>" },
  format: { type: "string", default: "pairs", help: "pairs (one preference record per pair) or ranking (one per item) <NAME>" },
  cache: { type: "string", help: "answers kept across runs (default: OUTPUT.cache.jsonl) <FILE>" },
  seed: { type: "string", default: "0", help: "seed of the principle draws (and of the server's sampling) <S>" },
  "max-tokens": { type: "string", default: "1024", help: "longest answer of a URL judge (explanation and verdict) <N>" },
  ...sourceFlags,
} as const;

export const command: Command = {
  summary: "AI preference labels from a judge (OpenAI-compatible URL or local model), both orders, cached",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    const source = requireFlag(v.judge, "judge");
    const output = requireFlag(v.output, "output");
    const format = v.format ?? "pairs";
    if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(", ")}, got "${format}"`);
    const seed = numberFlag(v.seed, "seed", 0, { min: 0, integer: true });
    const retry = { retries: numberFlag(v.retries, "retries", 3, { min: 0, integer: true }), baseDelayMs: 500 };
    const concurrency = numberFlag(v.concurrency, "concurrency", 4, { min: 1, integer: true });
    const maxTokens = numberFlag(v["max-tokens"], "max-tokens", 1024, { min: 1, integer: true });
    const template = readJudgeTemplate(v.template);
    const principles = v.constitution ? readConstitution(v.constitution) : null;
    const items = readJudgeItems(requireFlag(v.data, "data"));
    const summaryPath = siblingPath(output, ".summary.json");
    checkWritable(output);
    checkWritable(summaryPath);
    const cache = new JudgeCache(v.cache ?? siblingPath(output, ".cache.jsonl"));

    const pairs = comparisonsOf(items);
    const drawn = principles ? drawPrinciples(principles, pairs.length, seed) : null;
    const comparisons = pairs.map((c, n) => ({ ...c, principle: drawn ? drawn[n]! : null }));
    const model = await openSource(source, v["judge-model"], "judge-model", v);
    const judge = model instanceof LocalModel
      ? logprobJudge(model, answerPrefix(template))
      : textJudge(model, { retry: { ...retry, onRetry: (e, n) => process.stderr.write(`judge: retry ${n}/${retry.retries}: ${e.message}\n`) }, maxTokens, seed });
    const progress = throttledProgress("judge");
    let results: ComparisonResult[];
    let counts;
    try {
      ({ results, counts } = await runComparisons({
        items,
        comparisons,
        judge,
        template,
        cache,
        // The engine runs one program at a time; concurrent local asks would only interleave.
        concurrency: model instanceof LocalModel ? 1 : concurrency,
        onDone: (done, failed, c) => progress(`${done}/${comparisons.length} pairs (${c.requests} requests, ${c.cached} cached answers, ${failed} failed)`, done === comparisons.length),
      }));
    } finally {
      judge.dispose();
    }

    const name = judgeName(judge);
    const judged = results.filter((r) => "combined" in r);
    const kWay = items.some((item) => item.responses.length > 2);
    let records: Record<string, unknown>[];
    if (format === "pairs") {
      records = judged.map((r) => pairRecord(items[r.comparison.item]!, r, name, kWay));
    } else {
      records = items.flatMap((item, index) => {
        const own = results.filter((r) => r.comparison.item === index);
        // A ranking needs every pair: an item with a failed comparison is left out (and listed).
        return own.every((r) => "combined" in r) ? [rankingRecord(item, own as typeof judged, name)] : [];
      });
    }
    await writeFileAtomic(output, records.map((r) => JSON.stringify(r) + "\n").join(""));
    const failures = results.flatMap((r) => ("failure" in r ? [{ where: items[r.comparison.item]!.where, pair: [r.comparison.i, r.comparison.j], reason: r.failure }] : []));
    const summary = {
      judge: name,
      template: template.source,
      items: items.length,
      pairs: comparisons.length,
      judged: judged.length,
      ties: judged.filter((r) => r.combined.winner === null).length,
      failed: failures.length,
      records: records.length,
      requests: counts.requests,
      cached_answers: counts.cached,
      agreement: agreementWithPeople(items, results),
    };
    await writeFileAtomic(summaryPath, JSON.stringify({ ...summary, failures }, null, 2) + "\n");
    process.stdout.write(JSON.stringify(summary) + "\n");
    process.stderr.write(`judge: wrote ${records.length} ${format === "pairs" ? "preference" : "ranking"} records to ${output}, the summary to ${summaryPath}${failures.length ? ` (${failures.length} failed pairs listed there)` : ""}\n`);
    return judged.length === 0 && comparisons.length > 0 ? 1 : 0;
  },
};
