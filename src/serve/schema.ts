// The request bodies `rlhf serve` accepts, as OpenAI documents them; one schema per endpoint, parsed
// before anything runs. Unknown fields are refused, as OpenAI refuses them ("Unrecognized request
// argument supplied"), and fields this server cannot honour (penalties, logit_bias, tools, ...) are
// accepted only at their no-op values, so no request is silently answered differently.
import { z } from "zod";

const MAX_STOPS = 4; // OpenAI's limit
const MAX_TEXT = 1_000_000; // characters of one prompt or message

const nullish = <T extends z.ZodType>(schema: T) => schema.nullish();

/** The sampling fields both endpoints share, and their OpenAI defaults. */
const sampling = {
  model: z.string().min(1),
  temperature: nullish(z.number().min(0).max(2)),
  top_p: nullish(z.number().gt(0).max(1)),
  n: nullish(z.int().min(1).max(128)),
  stream: nullish(z.boolean()),
  stream_options: nullish(z.strictObject({ include_usage: z.boolean().optional() })),
  stop: nullish(z.union([z.string().min(1), z.array(z.string().min(1)).max(MAX_STOPS)])),
  seed: nullish(z.int()),
  user: z.string().optional(),
  // Accepted so clients that send the defaults work; anything else would change the answer.
  presence_penalty: nullish(z.literal(0, "presence_penalty is not supported; only 0 is accepted")),
  frequency_penalty: nullish(z.literal(0, "frequency_penalty is not supported; only 0 is accepted")),
  logit_bias: nullish(z.record(z.string(), z.number()).refine((b) => Object.keys(b).length === 0, "logit_bias is not supported; only {} is accepted")),
};

const tokenIds = z.array(z.int().min(0)).min(1);

export const CompletionRequest = z.strictObject({
  ...sampling,
  prompt: z.union([z.string().max(MAX_TEXT), z.array(z.string().max(MAX_TEXT)).min(1), tokenIds, z.array(tokenIds).min(1)]),
  max_tokens: nullish(z.int().min(1)),
  logprobs: nullish(z.int().min(0).max(5)),
  echo: nullish(z.literal(false, "echo is not supported")),
  suffix: z.null().optional(),
  best_of: nullish(z.literal(1, "best_of is not supported; only 1 is accepted")),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

const textPart = z.strictObject({ type: z.literal("text"), text: z.string() });

export const ChatMessageIn = z.object({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: z.union([z.string().max(MAX_TEXT), z.array(textPart)]).nullable(),
  name: z.string().optional(),
});

export const ChatCompletionRequest = z.strictObject({
  ...sampling,
  messages: z.array(ChatMessageIn).min(1),
  max_tokens: nullish(z.int().min(1)),
  max_completion_tokens: nullish(z.int().min(1)),
  logprobs: nullish(z.boolean()),
  top_logprobs: nullish(z.int().min(0).max(20)),
}).refine((r) => r.top_logprobs == null || r.logprobs === true, { message: "top_logprobs needs logprobs: true", path: ["top_logprobs"] });
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

/** A list of stop strings, whichever way it was given. */
export const stopList = (stop: string | string[] | null | undefined): string[] => (stop == null ? [] : typeof stop === "string" ? [stop] : stop);
