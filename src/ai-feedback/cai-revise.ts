// Constitutional AI's supervised phase (Bai et al. 2022b, section 3): a model answers a prompt,
// then, for each of n rounds, critiques its latest answer by a principle drawn from the
// constitution and rewrites it:
//   [prompt] → response
//   [prompt, response, critique request(principle)] → critique
//   [… critique, revision request(principle)] → revision (the next round's response)
// The final revision is an SFT target; (final revision, first response) a preference pair.
// The requests are templates with a {principle} slot (cai_prompts.json beside this file, in the
// style of the paper's requests); each round starts from [prompt, latest response], so the
// conversation stays within a small model's context.
import { fileURLToPath } from "node:url";
import { InputError } from "../io/errors.ts";
import { readInputText } from "../io/text-file.ts";
import type { ChatMessage } from "../tokenizers/chat.ts";
import type { ChatModel, CompletionOptions } from "./chat-model.ts";

export interface CaiTemplates {
  critique_request: string;
  revision_request: string;
}

export const DEFAULT_CAI_TEMPLATES = fileURLToPath(new URL("./cai_prompts.json", import.meta.url));

export function readCaiTemplates(path: string = DEFAULT_CAI_TEMPLATES): CaiTemplates {
  let value: unknown;
  try {
    value = JSON.parse(readInputText(path, "CAI template file"));
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  for (const field of ["critique_request", "revision_request"] as const) {
    const text = (value as Record<string, unknown>)?.[field];
    if (typeof text !== "string" || !text.includes("{principle}")) throw new InputError(`${path}: "${field}" must be a string with a {principle} slot`);
  }
  return value as CaiTemplates;
}

export interface Revision {
  principle: string;
  critique: string;
  revision: string;
}

export interface Revised {
  initial: string;
  rounds: Revision[];
  final: string;
}

/**
 * One prompt through `principles.length` critique-and-revision rounds. `complete` is the model's
 * answer to a conversation (retries around it are the caller's); call `k` of a prompt is sampled
 * with seed options.seed + k, so a rerun writes the same text. An empty revision keeps the
 * response it was meant to replace.
 */
export async function critiqueAndRevise(
  complete: ChatModel["complete"],
  prompt: ChatMessage[],
  principles: string[],
  templates: CaiTemplates,
  options: CompletionOptions,
): Promise<Revised> {
  let call = 0;
  const ask = (messages: ChatMessage[]) => complete(messages, { ...options, seed: options.seed + call++ });
  const initial = await ask(prompt);
  let current = initial;
  const rounds: Revision[] = [];
  for (const principle of principles) {
    const fill = (t: string) => t.replaceAll("{principle}", principle);
    const critiqueTurn: ChatMessage[] = [...prompt, { role: "assistant", content: current }, { role: "user", content: fill(templates.critique_request) }];
    const critique = await ask(critiqueTurn);
    const revision = await ask([...critiqueTurn, { role: "assistant", content: critique }, { role: "user", content: fill(templates.revision_request) }]);
    if (revision.trim() !== "") current = revision;
    rounds.push({ principle, critique, revision });
  }
  return { initial, rounds, final: current };
}
