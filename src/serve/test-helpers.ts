// What the serving tests share: a client that walks away from a stream.
import assert from "node:assert/strict";
import type OpenAI from "openai";
import type { ModelServer } from "./server.ts";

/**
 * Starts a sampled request, then streams a long one and closes the connection after three chunks;
 * waits until the scheduler has cancelled the closed stream's choice. Returns the request still
 * running (in an object, so that awaiting this does not wait for it).
 */
export async function disconnectMidStream(server: ModelServer, client: OpenAI, model: string, prompt: string): Promise<{ other: Promise<OpenAI.Completions.Completion> }> {
  const cancelledBefore = server.scheduler.stats.cancelled;
  const other = client.completions.create({ model, prompt: "Tom and Sue", max_tokens: 100, temperature: 1, seed: 3 });
  const stream = await client.completions.create({ model, prompt, max_tokens: 300, temperature: 1, seed: 5, stream: true });
  let received = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.text) received++;
    if (received === 3) break; // the client closes the connection
  }
  const deadline = Date.now() + 10_000;
  while (server.scheduler.stats.cancelled === cancelledBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(server.scheduler.stats.cancelled, cancelledBefore + 1, "the disconnected stream's choice was not cancelled");
  assert.ok(server.scheduler.activeChoices <= 1);
  return { other };
}
