import { closeSync, existsSync, openSync, readSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Command } from "../command.ts";
import { parseFlags, UsageError } from "../command.ts";
import { convertHhRlhf, convertRtPolarity, writeJsonLines, type Conversion } from "../../data/convert.ts";
import { formatReport, inspectFile } from "../../data/inspect.ts";
import { detectCheckpoint } from "../../io/detect.ts";
import { LLAMA2C_HEADER_BYTES, parseLlama2cHeader } from "../../io/llama2c.ts";
import { loadTokenizer } from "../../tokenizers/load.ts";
import type { Tokenizer } from "../../tokenizers/tokenizer.ts";

const usage = `Usage: rlhf data convert|inspect [options]

  rlhf data convert --from hh-rlhf IN OUT
      Anthropic's HH-RLHF transcripts (IN: .jsonl or .jsonl.gz of {"chosen", "rejected"} strings
      "\\n\\nHuman: …\\n\\nAssistant: …") → TRL's conversational preference records, the shared turns
      split off as the prompt, as TRL's hh-rlhf-helpful-base script makes them:
      {"prompt": [{"role": "user", "content"}, …], "chosen": [{"role": "assistant", …}], "rejected": […]}.
      Dropped, and counted by reason: identical transcripts, transcripts that differ in more than
      the final assistant reply, empty final replies, turns that do not alternate user/assistant,
      malformed lines.
  rlhf data convert --from rt-polarity DIR OUT
      The rt-polarity folder → {"chosen": line i of rt-polarity.pos, "rejected": line i of
      rt-polarity.neg} (implicit, empty prompt). The files are read as UTF-8, else Latin-1.
      OUT ending in .gz is gzipped; it is written atomically (whole or not at all).

  rlhf data inspect FILE [--tokenizer PATH | --model PATH] [--json]
      The file's TRL format (language modeling, prompt-only, prompt-completion, preference with an
      explicit or implicit prompt, unpaired preference, ranking, self-instruct; standard or
      conversational), its record count, and min/mean/median/p95/max lengths of prompt,
      completion (chosen, rejected) and total as the trainers render them (chat template, BOS,
      EOS), plus how many fit in max_length 128…4096. Lengths are in tokens of --tokenizer, or of
      the tokenizer --model would use; with neither, in characters (no guessed tokenizer).
      Every record must be valid and of one format; the first that is not is named by file:line.`;

const flags = {
  from: { type: "string", help: "convert: the source, hh-rlhf or rt-polarity <NAME>" },
  tokenizer: { type: "string", help: "inspect: count tokens of this tokenizer file or directory <PATH>" },
  model: { type: "string", help: "inspect: count tokens of this model's tokenizer (weights are not loaded) <PATH>" },
  json: { type: "boolean", help: "print one JSON object" },
} as const;

export const command: Command = {
  summary: "datasets: convert HH-RLHF / rt-polarity to TRL's format, inspect a file's format and lengths",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === "--help" || sub === "-h") {
      process.stdout.write(usage + "\n");
      return sub ? 0 : 2;
    }
    if (sub !== "convert" && sub !== "inspect") throw new UsageError(`unknown subcommand "${sub}" (convert, inspect)\n\n${usage}`);
    const parsed = parseFlags(rest, usage, flags, { positionals: true });
    if (!parsed) return 0;
    return sub === "convert" ? convert(parsed.values, parsed.positionals) : inspect(parsed.values, parsed.positionals);
  },
};

type Values = { from?: string; tokenizer?: string; model?: string; json?: boolean };

async function convert(v: Values, positionals: string[]): Promise<number> {
  if (positionals.length !== 2) throw new UsageError(`data convert takes IN and OUT, got ${positionals.length} paths (see --help)`);
  const [input, output] = positionals as [string, string];
  let result: Conversion;
  if (v.from === "hh-rlhf") result = convertHhRlhf(input, progress(`reading ${basename(input)}`));
  else if (v.from === "rt-polarity") result = convertRtPolarity(input);
  else throw new UsageError(`--from must be hh-rlhf or rt-polarity, got ${v.from === undefined ? "nothing" : `"${v.from}"`}`);
  await writeJsonLines(output, result.records);
  const summary = { input, output, read: result.read, written: result.records.length, dropped: result.dropped };
  if (v.json) process.stdout.write(JSON.stringify(summary) + "\n");
  else {
    const lines = [`read ${result.read} records from ${input}, wrote ${result.records.length} to ${output}`];
    for (const d of result.dropped) lines.push(`  dropped ${d.count}: ${d.description} (first: ${d.first})`);
    process.stdout.write(lines.join("\n") + "\n");
  }
  return 0;
}

async function inspect(v: Values, positionals: string[]): Promise<number> {
  if (positionals.length !== 1) throw new UsageError(`data inspect takes one FILE, got ${positionals.length} (see --help)`);
  if (v.tokenizer && v.model) throw new UsageError("pass --tokenizer or --model, not both");
  const tok = v.tokenizer ? await loadTokenizer(v.tokenizer) : v.model ? await modelTokenizer(v.model) : null;
  const report = inspectFile(positionals[0]!, tok, progress("measuring"));
  process.stdout.write(v.json ? JSON.stringify({ ...report, tokenizer: v.tokenizer ?? v.model ?? null }) + "\n" : formatReport(report, v.tokenizer ?? v.model ?? null));
  return 0;
}

/** The tokenizer a model would be trained with, found the way `resolveTokenizer` finds it, without loading weights. */
async function modelTokenizer(path: string): Promise<Tokenizer> {
  if ((await detectCheckpoint(path)) === "hf-dir") {
    if (!existsSync(join(path, "tokenizer.json")) && !existsSync(join(path, "vocab.json"))) throw new UsageError(`${path} has no tokenizer.json; pass --tokenizer PATH`);
    return loadTokenizer(path);
  }
  const header = new Uint8Array(LLAMA2C_HEADER_BYTES);
  const fd = openSync(path, "r");
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  const { vocabSize } = parseLlama2cHeader(header, path);
  for (const name of [`tok${vocabSize}.bin`, "tokenizer.bin"]) {
    const candidate = join(dirname(path), name);
    if (!existsSync(candidate)) continue;
    const tok = await loadTokenizer(candidate);
    if (tok.vocabSize === vocabSize) return tok;
  }
  throw new UsageError(`no tokenizer with ${vocabSize} tokens beside ${path} (looked for tok${vocabSize}.bin, tokenizer.bin); pass --tokenizer PATH`);
}

/** A "label: done/total records" line on stderr for work that takes more than a second: redrawn on a terminal, every 5 s otherwise. */
function progress(label: string): (done: number, total: number) => void {
  const out = process.stderr;
  const start = performance.now();
  let last = start;
  let drawn = false;
  return (done, total) => {
    const now = performance.now();
    if (done === total) {
      if (drawn && out.isTTY) out.write("\n");
      return;
    }
    if (now - start < 1000 || now - last < (out.isTTY ? 200 : 5000)) return;
    last = now;
    drawn = true;
    const text = `data: ${label}: ${done}/${total} records`;
    out.write(out.isTTY ? `\r\x1b[K${text}` : `${text}\n`);
  };
}
