// The two kinds of judge behind `rlhf judge`, both answering one comparison in one order:
//   text judge         a chat model (remote, OpenAI-compatible) writes an explanation ending in a
//                      verdict, parsed strictly (verdict.ts); an unparsable answer is asked again
//                      like a failed request, and after the retries the comparison fails;
//   log-probability    a local model reads the judge prompt followed by the output format's prefix
//   judge              ("[[") and the verdict is the likelier of the answers "A" and "B":
//                      p_a = p(A) / (p(A) + p(B)) from the two answers' log-probabilities.
import type { ChatMessage } from "../tokenizers/chat.ts";
import type { ChatModel, LocalModel } from "./chat-model.ts";
import { ItemFailure } from "./item-failure.ts";
import type { JudgeMessages } from "./judge-template.ts";
import { RetryableError, withRetries, type RetryOptions } from "./retry.ts";
import { parseVerdict, textVerdict, type OrderVerdict } from "./verdict.ts";

export interface Judge {
  /** Identifies the judge in the output and the cache: the URL or path, and the model name. */
  readonly source: string;
  readonly model: string | null;
  ask(messages: JudgeMessages): Promise<OrderVerdict>;
  dispose(): void;
}

const conversation = (m: JudgeMessages): ChatMessage[] => [{ role: "system", content: m.system }, { role: "user", content: m.user }];

export function textJudge(chat: ChatModel, settings: { retry: RetryOptions; maxTokens: number; seed: number }): Judge {
  return {
    source: chat.source,
    model: chat.model,
    ask: (messages) =>
      withRetries(async () => {
        const text = await chat.complete(conversation(messages), { temperature: 0, maxTokens: settings.maxTokens, seed: settings.seed });
        const verdict = parseVerdict(text);
        if (verdict === null) throw new RetryableError(`unparsable verdict (expected exactly one of [[A]], [[B]], [[C]]): ${JSON.stringify(text.length > 120 ? `…${text.slice(-120)}` : text)}`);
        return textVerdict(verdict, text);
      }, settings.retry),
    dispose: () => chat.dispose(),
  };
}

/** The token ids of `answer` as the continuation of `prompt`: the tail of prompt + answer tokenized whole when the prompt's ids are its prefix. */
export function continuationIds(local: LocalModel, promptIds: number[], prompt: string, answer: string): number[] {
  const whole = local.tokenizer.encode(prompt + answer);
  if (whole.length > promptIds.length && promptIds.every((id, i) => whole[i] === id)) return whole.slice(promptIds.length);
  return local.tokenizer.encode(answer, { addSpecialTokens: false });
}

export function logprobJudge(local: LocalModel, prefix: string): Judge {
  return {
    source: local.source,
    model: null,
    async ask(messages) {
      const prompt = local.promptText(conversation(messages)) + prefix;
      const promptIds = local.tokenizer.encode(prompt);
      const answers = ["A", "B"].map((a) => continuationIds(local, promptIds, prompt, a));
      const longest = promptIds.length + Math.max(...answers.map((a) => a.length));
      const context = local.loaded.arch.maxPositions;
      if (longest > context) throw new ItemFailure(`the judge prompt is ${longest} tokens; ${local.source}'s context is ${context}`);
      const [la, lb] = await local.answerLogprobs(answers.map((answer) => ({ prompt: promptIds, answer })));
      const p_a = 1 / (1 + Math.exp(lb! - la!));
      return { verdict: p_a > 0.5 ? "A" : p_a < 0.5 ? "B" : "C", rationale: null, p_a };
    },
    dispose: () => local.dispose(),
  };
}
