// Prompt files for the RL commands (ppo, grpo, rloo, eval, pairs, feedback generate): JSON lines
// with a `prompt` field, text or chat messages (rendered through the tokenizer's chat template
// with a generation prompt). Plain-text files (.txt) are one prompt per line.
import { readFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import { InputError } from "../io/errors.ts";
import type { ChatMessage } from "../tokenizers/chat.ts";

export class PromptFileError extends InputError {}

export type PromptValue = string | ChatMessage[];

export async function readPromptFile(path: string): Promise<PromptValue[]> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch {
    throw new PromptFileError(`prompt file not found: ${path}`);
  }
  const text = (path.endsWith(".gz") ? gunzipSync(raw) : raw).toString("utf8");
  const lines = text.split("\n");
  if (/\.txt(\.gz)?$/.test(path)) return lines.map((l) => l.trim()).filter((l) => l.length > 0);
  const prompts: PromptValue[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      throw new PromptFileError(`${path}:${i + 1}: not valid JSON (${(err as Error).message})`);
    }
    const prompt = (record as { prompt?: unknown })?.prompt;
    if (typeof prompt === "string") prompts.push(prompt);
    else if (Array.isArray(prompt) && prompt.every((m) => typeof m?.role === "string" && typeof m?.content === "string")) prompts.push(prompt as ChatMessage[]);
    else throw new PromptFileError(`${path}:${i + 1}: field "prompt" must be a string or a list of {role, content} messages`);
  });
  if (prompts.length === 0) throw new PromptFileError(`${path}: no prompts`);
  return prompts;
}

