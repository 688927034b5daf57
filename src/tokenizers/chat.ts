// Chat templates: the Jinja template from tokenizer_config.json, rendered the way transformers'
// apply_chat_template renders it, so prompts match what a Hub model was fine-tuned on.
import { Template } from "@huggingface/jinja";
import type { Tokenizer } from "./tokenizer.ts";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | string;
  content: string;
}

/**
 * The template for tokenizers without one (llama2.c models, GPT-2): each message as
 * "<|role|>\n content \n", and with addGenerationPrompt a trailing "<|assistant|>\n".
 *
 *   <|system|>\nYou are kind.\n<|user|>\nHi\n<|assistant|>\n
 *
 * It holds no special tokens on purpose: encode() already adds BOS, and llama2.c's encoder would turn
 * a literal "</s>" into characters rather than EOS, so trainers append eosTokenId to completions
 * themselves. The markers are plain text that any vocabulary can encode.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}<|{{ message.role }}|>\n{{ message.content }}\n{% endfor %}" +
  "{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

/** Template precedence: options.template, then the tokenizer's own, then DEFAULT_CHAT_TEMPLATE. */
export function applyChatTemplate(
  tok: Tokenizer,
  messages: ChatMessage[],
  options: { addGenerationPrompt?: boolean; template?: string } = {},
): string {
  const template = new Template(options.template ?? tok.chatTemplate ?? DEFAULT_CHAT_TEMPLATE);
  const tokenText = (id: number | null) => (id === null ? "" : tok.decode([id]));
  return template.render({
    messages,
    bos_token: tokenText(tok.bosTokenId),
    eos_token: tokenText(tok.eosTokenId),
    add_generation_prompt: options.addGenerationPrompt ?? false,
  });
}

/** A prompt as the model reads it: text as is, messages through the chat template with its generation prompt. */
export function promptText(tok: Tokenizer, prompt: string | ChatMessage[]): string {
  return typeof prompt === "string" ? prompt : applyChatTemplate(tok, prompt, { addGenerationPrompt: true });
}
