// KTO's data: completions labelled desirable or undesirable, each with its prompt. TRL's formats:
//   unpaired preference  {"prompt", "completion", "label": true|false}: strings, or lists of
//                        {role, content} messages;
//   preference           {"prompt"?, "chosen", "rejected"}, unpaired as TRL's
//                        maybe_unpair_preference_dataset does: chosen desirable, rejected not;
// and the rt-polarity folder (each positive sentence desirable, each negative one not, empty prompt).
// Everything is tokenized as dpo-data.ts does it (chat prompts with the generation prompt, the
// completion as what the template adds, EOS appended unless the record marks the completion as cut
// off: `completion_truncated`, or a pair's `chosen_truncated` / `rejected_truncated`), so a pair
// gives the same ids either way.
import { existsSync, statSync } from "node:fs";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { readRecords } from "./datasets.ts";
import { fitDpoExample, readDpoData, renderDpo, type DpoExample, type DpoLengths } from "./dpo-data.ts";
import { DataError, describeFormat, recordFormat, type Json } from "./formats.ts";

/** One labelled completion as token ids; the model reads prompt ++ completion. */
export interface KtoExample {
  prompt: number[];
  completion: number[];
  /** true: desirable (TRL's label True), false: undesirable. */
  label: boolean;
}

/** A preference pair as TRL unpairs it: the chosen completion desirable, the rejected one not. */
export function unpair(pair: DpoExample): KtoExample[] {
  return [
    { prompt: pair.prompt, completion: pair.chosen, label: true },
    { prompt: pair.prompt, completion: pair.rejected, label: false },
  ];
}

/** One record → its examples (one, or two for a pair); errors name the record (file:line) and the field. */
export function renderKto(record: Json, tok: Tokenizer, where: string): KtoExample[] {
  const format = recordFormat(record, where);
  if (format.kind === "preference") return unpair(renderDpo(record, tok, where));
  if (format.kind !== "unpaired preference") {
    throw new DataError(`${where}: a ${describeFormat(format)} record; KTO reads unpaired preferences ({"prompt", "completion", "label": true|false}) or preference pairs ({"prompt"?, "chosen", "rejected"})`);
  }
  // recordFormat has checked the fields; DPO's renderer tokenizes the prompt and one completion.
  try {
    const cut = record.completion_truncated;
    if (cut !== undefined && typeof cut !== "boolean") throw new DataError(`${where}: "completion_truncated" must be true or false, got ${JSON.stringify(cut)}`);
    const { prompt, chosen } = renderDpo({ prompt: record.prompt, chosen: record.completion, rejected: record.completion, chosen_truncated: cut ?? false }, tok, where);
    return [{ prompt, completion: chosen, label: record.label as boolean }];
  } catch (err) {
    if (err instanceof DataError) throw new DataError(err.message.replaceAll('"chosen"', '"completion"'));
    throw err;
  }
}

/**
 * KTO examples from a JSON-lines / JSON file or the rt-polarity folder, grouped by record (a pair
 * gives two), so that a held-out split keeps both halves of a pair on the same side.
 */
export function readKtoData(path: string, tok: Tokenizer): KtoExample[][] {
  if (existsSync(path) && statSync(path).isDirectory()) return readDpoData(path, tok).map(unpair);
  return readRecords(path).map(({ record, where }) => renderKto(record, tok, where));
}

/** Cuts an example as DPO cuts a pair (fitDpoExample): the prompt from the left, the completion from the right. */
export function fitKtoExample(e: KtoExample, limits: DpoLengths): { example: KtoExample; truncated: boolean } {
  const { example, truncated } = fitDpoExample({ prompt: e.prompt, chosen: e.completion, rejected: [] }, limits);
  return { example: { prompt: example.prompt, completion: example.chosen, label: e.label }, truncated };
}
