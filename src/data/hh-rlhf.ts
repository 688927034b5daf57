// Anthropic's HH-RLHF transcripts → TRL's conversational preference records, as TRL's
// examples/datasets/hh-rlhf-helpful-base.py makes them (trl-lib/hh-rlhf-helpful-base):
//
//   {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}
//   → {"prompt": [{"role": "user", "content": "Hi"}],
//      "chosen": [{"role": "assistant", "content": "Hello!"}],
//      "rejected": [{"role": "assistant", "content": "Go away."}]}
//
// TRL cuts the two strings' common prefix back to its last "\n\nAssistant: " and keeps whatever
// follows as the reply. Here the transcripts are parsed into turns instead, which gives the same
// record whenever the two differ in the final assistant reply alone, and lets the real data's
// quirks be dropped by name rather than turned into replies that hold whole fake turns:
//   - identical: chosen and rejected are the same transcript (nothing to learn);
//   - diverges early: they differ before the final reply, or a reply holds further
//     "\n\nHuman: " / "\n\nAssistant: " turns (the model wrote the user's next line);
//   - empty reply: a final reply is empty or whitespace;
//   - roles not alternating: two user or two assistant turns in a row, which chat templates such
//     as Llama 2's refuse to render;
//   - malformed: not JSON, fields not strings, not "\n\nHuman: …\n\nAssistant: …" transcripts.
import type { ChatMessage } from "../tokenizers/chat.ts";
import { describeValue, type Json } from "./formats.ts";

export interface ConversationalPair {
  prompt: ChatMessage[];
  chosen: [ChatMessage];
  rejected: [ChatMessage];
}

export const dropReasons = {
  identical: "chosen and rejected are the same transcript",
  "diverges-early": "the transcripts differ in more than the final assistant reply",
  "empty-reply": "a final assistant reply is empty",
  "roles-not-alternating": "the turns do not alternate user/assistant",
  malformed: "not a pair of \"\\n\\nHuman: …\\n\\nAssistant: …\" transcripts",
} as const;

export type DropReason = keyof typeof dropReasons;

export type SplitResult = { pair: ConversationalPair } | { drop: DropReason; detail: string };

const MARKER = /(\n\nHuman: |\n\nAssistant: )/;

/** "\n\nHuman: a\n\nAssistant: b" → [{user, a}, {assistant, b}], split exactly where TRL's regex splits. */
export function parseTranscript(text: string): ChatMessage[] | string {
  const parts = text.split(MARKER);
  if (parts[0] !== "") return `does not start with "\\n\\nHuman: " (starts ${JSON.stringify(text.slice(0, 20))})`;
  const turns: ChatMessage[] = [];
  for (let i = 1; i < parts.length; i += 2) turns.push({ role: parts[i] === "\n\nHuman: " ? "user" : "assistant", content: parts[i + 1]! });
  return turns;
}

const sameTurn = (a: ChatMessage, b: ChatMessage) => a.role === b.role && a.content === b.content;

/** One HH record → a conversational pair with the shared turns as the prompt, or why it was dropped. */
export function splitHhRecord(record: Json): SplitResult {
  const drop = (reason: DropReason, detail: string): SplitResult => ({ drop: reason, detail });
  for (const field of ["chosen", "rejected"]) {
    if (typeof record[field] !== "string") return drop("malformed", `"${field}" must be a transcript string, got ${describeValue(record[field])}`);
  }
  const [chosenText, rejectedText] = [record.chosen as string, record.rejected as string];
  if (chosenText === rejectedText) return drop("identical", dropReasons.identical);
  const chosen = parseTranscript(chosenText);
  const rejected = parseTranscript(rejectedText);
  if (typeof chosen === "string") return drop("malformed", `"chosen" ${chosen}`);
  if (typeof rejected === "string") return drop("malformed", `"rejected" ${rejected}`);
  let k = 0;
  while (k < chosen.length && k < rejected.length && sameTurn(chosen[k]!, rejected[k]!)) k++;
  if (chosen.length !== k + 1 || rejected.length !== k + 1) {
    return drop("diverges-early", `they share ${k} turn${k === 1 ? "" : "s"}, then chosen has ${chosen.length - k} and rejected ${rejected.length - k} (expected one assistant reply each)`);
  }
  const [c, r] = [chosen[k]!, rejected[k]!];
  if (c.role !== "assistant" || r.role !== "assistant") return drop("malformed", `the turns that differ are not both the assistant's (chosen: ${c.role}, rejected: ${r.role})`);
  if (c.content.trim() === "" || r.content.trim() === "") return drop("empty-reply", `the ${c.content.trim() === "" ? "chosen" : "rejected"} reply is empty`);
  // The whole conversation, reply included, must go user, assistant, user, …, assistant.
  const badTurn = chosen.findIndex((m, i) => m.role !== (i % 2 === 0 ? "user" : "assistant"));
  if (badTurn >= 0) return drop("roles-not-alternating", `turn ${badTurn + 1} is the ${chosen[badTurn]!.role}'s, expected the ${badTurn % 2 === 0 ? "user" : "assistant"}'s`);
  return { pair: { prompt: chosen.slice(0, k), chosen: [c], rejected: [r] } };
}
