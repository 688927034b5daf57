// The --judge / --model SRC of the AI feedback commands: an OpenAI-compatible base URL (with a
// model name and an API key) or one of the project's models; and the flags they share.
import { numberFlag, UsageError } from "./command.ts";
import { LocalModel, remoteChatModel, type ChatModel } from "../ai-feedback/chat-model.ts";
import { isHttpSource } from "../ai-feedback/openai-chat.ts";

export const sourceFlags = {
  "api-key": { type: "string", help: "API key for a URL source (default: $OPENAI_API_KEY) <KEY>" },
  timeout: { type: "string", default: "300", help: "seconds to wait for one answer of a URL source <S>" },
  retries: { type: "string", default: "3", help: "attempts after the first on 429, 5xx, network errors and unparsable answers (backoff 0.5 s, doubling) <N>" },
  concurrency: { type: "string", default: "4", help: "requests in flight at once to a URL source (a local model runs one at a time) <N>" },
  base: { type: "string", help: "base model of a LoRA adapter given as the local model <PATH>" },
  tokenizer: { type: "string", help: "tokenizer of the local model (default: found with it) <PATH>" },
} as const;

export interface SourceValues {
  "api-key"?: string | undefined;
  timeout?: string | undefined;
  base?: string | undefined;
  tokenizer?: string | undefined;
}

/** A remote chat model for a URL (the model name required), else a local model loaded from the path. */
export async function openSource(src: string, modelName: string | undefined, modelFlag: string, v: SourceValues): Promise<ChatModel | LocalModel> {
  if (isHttpSource(src)) {
    if (!modelName) throw new UsageError(`--${modelFlag} is required with a URL source (the model name the server knows)`);
    return remoteChatModel({
      baseUrl: src,
      model: modelName,
      apiKey: v["api-key"] ?? process.env.OPENAI_API_KEY ?? null,
      timeoutMs: numberFlag(v.timeout, "timeout", 300, { min: 0.001 }) * 1000,
    });
  }
  return LocalModel.load(src, { base: v.base, tokenizer: v.tokenizer });
}

/** OUTPUT.jsonl → OUTPUT + suffix ("labels.jsonl" → "labels.summary.json"). */
export const siblingPath = (output: string, suffix: string) => output.replace(/\.jsonl?(\.gz)?$/, "") + suffix;

/** Progress on stderr at most once a second, and always the last call. */
export function throttledProgress(label: string): (line: string, final?: boolean) => void {
  let last = 0;
  return (line, final = false) => {
    const now = Date.now();
    if (!final && now - last < 1000) return;
    last = now;
    process.stderr.write(`${label}: ${line}\n`);
  };
}
