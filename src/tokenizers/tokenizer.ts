// The one tokenizer interface the rest of the stack codes against, plus the small pieces every
// implementation shares: special-token names in tokenizer_config.json and atomic file writes.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";
import { InputError } from "../io/errors.ts";

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null; // may be null; callers fall back to eos
  readonly chatTemplate: string | null;
  /** The context length the tokenizer was configured for (tokenizer_config's model_max_length), if known. */
  readonly modelMaxLength: number | null;
  /** addSpecialTokens (default true) adds BOS where the tokenizer's config does (llama2c & Llama: yes; GPT-2: no). */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** skipSpecialTokens defaults to false, as in Hugging Face's decode. */
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  /** Writes tokenizer.json + tokenizer_config.json into dir (atomic: temp file then rename). */
  save(dir: string): Promise<void>;
}

/** tokenizer_config.json as far as this project reads it; everything else is carried through on save. */
export interface TokenizerConfig {
  bos_token?: SpecialTokenField;
  eos_token?: SpecialTokenField;
  pad_token?: SpecialTokenField;
  unk_token?: SpecialTokenField;
  model_max_length?: number;
  chat_template?: string | { name: string; template: string }[];
  tokenizer_class?: string;
  [key: string]: unknown;
}

/** Older configs spell a special token as an AddedToken object, newer ones as a plain string. */
export type SpecialTokenField = string | { content: string } | null;

export function specialTokenContent(field: SpecialTokenField | undefined): string | null {
  if (field == null) return null;
  return typeof field === "string" ? field : field.content;
}

/** A config may hold several named templates; "default" is the one transformers uses for plain chat. */
export function chatTemplateOf(config: TokenizerConfig): string | null {
  const template = config.chat_template;
  if (template == null) return null;
  if (typeof template === "string") return template;
  return template.find((t) => t.name === "default")?.template ?? template[0]?.template ?? null;
}

/**
 * transformers writes int(1e30) when a tokenizer has no length limit; we write the same sentinel
 * (as the float 1e30, which transformers reads back as "no limit" too) rather than invent a number.
 */
const NO_MAX_LENGTH = 1e30;

/** The tokenizer_config.json fields save() always writes, on top of whatever the source config had. */
export function savedConfig(
  base: TokenizerConfig,
  tok: Tokenizer,
  tokenizerClass: string,
  tokenString: (id: number | null) => string | null,
): TokenizerConfig {
  const config: TokenizerConfig = {
    ...base,
    bos_token: tokenString(tok.bosTokenId),
    eos_token: tokenString(tok.eosTokenId),
    pad_token: tokenString(tok.padTokenId),
    model_max_length: tok.modelMaxLength ?? NO_MAX_LENGTH,
    tokenizer_class: base.tokenizer_class ?? tokenizerClass,
  };
  if (tok.chatTemplate !== null) config.chat_template = tok.chatTemplate;
  return config;
}

/** Writes both files of a Hugging Face tokenizer; each lands whole or not at all. */
export async function writeTokenizerFiles(dir: string, tokenizerJson: unknown, config: TokenizerConfig): Promise<void> {
  await writeFileAtomic(join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson, null, 2) + "\n");
  await writeFileAtomic(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
}

/** readFile with the one error people hit named plainly: the tokenizer file is not where they said. */
export async function readTokenizerFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new InputError(`tokenizer file not found: ${path}`);
    if ((err as NodeJS.ErrnoException).code === "EISDIR") throw new InputError(`${path} is a directory; expected a tokenizer file`);
    throw err;
  }
}
