// Runs a request's choices on the scheduler and answers with OpenAI's objects: one JSON body, or a
// server-sent event stream (`data: {chunk}` per token, then `data: [DONE]`). When the client goes
// away before the answer is complete, its choices are cancelled and leave the batch at once.
import { randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ApiError } from "./errors.ts";
import type { ChoiceEvent, FinishReason, SampledToken, SamplingParams, Scheduler, Submitted } from "./scheduler.ts";
import type { Shapes, Usage } from "./shapes.ts";

export interface Job extends SamplingParams {
  /** One entry per prompt (completions may send several); choice index = prompt × n + choice. */
  prompts: number[][];
  stream: boolean;
  includeUsage: boolean;
  model: string;
}

interface ChoiceState {
  text: string;
  tokens: SampledToken[];
  finishReason: FinishReason | null;
}

export async function respond(scheduler: Scheduler, job: Job, shapes: Shapes, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const id = shapes.idPrefix + randomBytes(12).toString("hex");
  const created = Math.floor(Date.now() / 1000);
  const choices: ChoiceState[] = Array.from({ length: job.prompts.length * job.n }, () => ({ text: "", tokens: [], finishReason: null }));
  let completionTokens = 0;
  const usage = (): Usage => {
    const promptTokens = job.prompts.reduce((sum, p) => sum + p.length, 0);
    return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  };
  const header = (object: string) => ({ id, object, created, model: job.model });

  if (job.stream) {
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-request-id": req.id });
    const write = (data: object | string) => !reply.raw.destroyed && reply.raw.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
    const chunk = (choice: object) => write({ ...header(shapes.chunkObject), choices: [choice], ...(job.includeUsage ? { usage: null } : {}) });
    choices.forEach((_, i) => {
      const opening = shapes.opening(i);
      if (opening) chunk(opening);
    });
    const send = (e: ChoiceEvent, index: number) => {
      const tokens = e.eos || job.topLogprobs === null ? [] : [e.token];
      if (e.text !== "" || tokens.length > 0 || e.finishReason) chunk(shapes.chunkChoice(index, e.text, tokens, e.finishReason));
    };
    const finishStream = (error?: ApiError) => {
      if (reply.raw.destroyed) return;
      if (error) write(error.body);
      else if (job.includeUsage) write({ ...header(shapes.chunkObject), choices: [], usage: usage() });
      write("[DONE]");
      reply.raw.end();
    };
    try {
      await runChoices(scheduler, job, choices, (e, i) => { completionTokens++; send(e, i); }, reply);
      finishStream();
    } catch (err) {
      req.log.error({ err, url: req.url }, "generation failed");
      finishStream(new ApiError(500, "generation failed; see the server's log"));
    }
    return reply;
  }
  await runChoices(scheduler, job, choices, () => completionTokens++, reply);
  return {
    ...header(shapes.object),
    choices: choices.map((c, i) => shapes.choice(i, c.text, c.tokens, c.finishReason ?? "length")),
    usage: usage(),
  };
}

/**
 * Submits every prompt; each event updates its choice's state and is passed on. The returned
 * promise settles when all are done; a client that disconnects first cancels them all.
 */
function runChoices(
  scheduler: Scheduler, job: Job, choices: ChoiceState[], onEvent: (e: ChoiceEvent, index: number) => void, reply: FastifyReply,
): Promise<void> {
  const submitted: Submitted[] = job.prompts.map((promptIds, p) =>
    scheduler.submit({
      ...job, promptIds,
      onEvent: (e) => {
        const index = p * job.n + e.choice;
        const c = choices[index]!;
        c.text += e.text;
        if (!e.eos && job.topLogprobs !== null) c.tokens.push(e.token);
        c.finishReason = e.finishReason;
        onEvent(e, index);
      },
    }),
  );
  const cancelAll = () => submitted.forEach((s) => s.cancel());
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) cancelAll();
  });
  return Promise.all(submitted.map((s) => s.done)).then(() => undefined, (err) => {
    cancelAll();
    throw err;
  });
}
