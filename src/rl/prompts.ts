// Prompt files for the RL commands (ppo, grpo, rloo, eval, pairs, feedback generate): JSON lines
// with a `prompt` field, text or chat messages (rendered through the tokenizer's chat template
// with a generation prompt). Plain-text files (.txt) are one prompt per line.
import { InputError } from "../io/errors.ts";
import { numberedLines, readInputText } from "../io/text-file.ts";
import type { ChatMessage } from "../tokenizers/chat.ts";

export class PromptFileError extends InputError {}

export type PromptValue = string | ChatMessage[];

export async function readPromptFile(path: string): Promise<PromptValue[]> {
  const lines = numberedLines(readInputText(path, "prompt file"));
  if (/\.txt(\.gz)?$/.test(path)) return lines.map((l) => l.text.trim());
  const prompts: PromptValue[] = [];
  for (const { line, text } of lines) {
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (err) {
      throw new PromptFileError(`${path}:${line}: not valid JSON (${(err as Error).message})`);
    }
    const prompt = (record as { prompt?: unknown })?.prompt;
    if (typeof prompt === "string") prompts.push(prompt);
    else if (Array.isArray(prompt) && prompt.every((m) => typeof m?.role === "string" && typeof m?.content === "string")) prompts.push(prompt as ChatMessage[]);
    else throw new PromptFileError(`${path}:${line}: field "prompt" must be a string or a list of {role, content} messages`);
  }
  if (prompts.length === 0) throw new PromptFileError(`${path}: no prompts`);
  return prompts;
}

