// rlhf cai revise against a fake OpenAI-compatible server, and with a local model.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { readSftData } from "../data/datasets.ts";
import { readDpoData } from "../data/dpo-data.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { loadLlama2cTokenizer } from "../tokenizers/llama2c.ts";
import { fakeOpenAiServer, readJsonl, reply, runRlhfAsync } from "./test-helpers.ts";

const server = fakeOpenAiServer();
const PRINCIPLES = ["Be polite.", "Be honest."];

async function inputs(prompts: unknown[]): Promise<{ dir: string; prompts: string; constitution: string }> {
  const dir = await tempDir();
  writeFileSync(join(dir, "prompts.jsonl"), prompts.map((p) => JSON.stringify({ prompt: p })).join("\n") + "\n");
  writeFileSync(join(dir, "constitution.json"), JSON.stringify(PRINCIPLES));
  return { dir, prompts: join(dir, "prompts.jsonl"), constitution: join(dir, "constitution.json") };
}

test("response → critique by a drawn principle → revision, two rounds; SFT records and pairs written", async () => {
  server.reset((body, res) => {
    const last = body.messages.at(-1)!.content;
    const answers = body.messages.filter((m) => m.role === "assistant").map((m) => m.content);
    if (last.startsWith("Identify specific ways")) return reply(res, `Critique of "${answers.at(-1)}".`);
    // [prompt, answer, critique request, critique, revision request]: the answer is revised.
    if (last.startsWith("Please rewrite")) return reply(res, `${answers.at(-2)} (revised)`);
    reply(res, `Answer to ${last}`);
  });
  const { dir, prompts, constitution } = await inputs(["Hi", [{ role: "user", content: "Bye" }]]);
  const r = await runRlhfAsync(["cai", "revise", "--model", server.baseUrl, "--model-name", "fake", "--constitution", constitution, "--prompts", prompts, "--output", join(dir, "cai.jsonl"), "--rounds", "2", "--seed", "3"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(server.requests.length, 2 * (1 + 2 * 2));
  const critique = server.requests.find((b) => b.messages[0]!.content === "Hi" && b.messages.at(-1)!.content.startsWith("Identify"))!;
  assert.equal(critique.messages[0]!.content, "Hi");
  assert.equal(critique.messages[1]!.role, "assistant");
  assert.match(critique.messages[2]!.content, /^Identify specific ways in which the assistant's last response does not follow this principle: Be (polite|honest)\.$/);
  const seeds = server.requests.map((b) => b.seed);
  assert.equal(new Set(seeds).size, seeds.length, "every call samples with its own seed");

  const [text, chat] = readJsonl(readFileSync(join(dir, "cai.sft.jsonl"), "utf8"));
  assert.deepEqual(text!.prompt, [{ role: "user", content: "Hi" }]);
  assert.deepEqual(text!.completion, [{ role: "assistant", content: "Answer to Hi (revised) (revised)" }]);
  assert.equal(text!.initial, "Answer to Hi");
  const rounds = text!.revisions as { principle: string; critique: string; revision: string }[];
  assert.equal(rounds.length, 2);
  assert.ok(rounds.every((x) => PRINCIPLES.includes(x.principle)));
  assert.equal(rounds[1]!.critique, 'Critique of "Answer to Hi (revised)".');
  assert.deepEqual(chat!.completion, [{ role: "assistant", content: "Answer to Bye (revised) (revised)" }]);
  const pairs = readJsonl(readFileSync(join(dir, "cai.pairs.jsonl"), "utf8"));
  const m = (role: string, content: string) => [{ role, content }];
  assert.deepEqual(pairs[0], { prompt: m("user", "Hi"), chosen: m("assistant", "Answer to Hi (revised) (revised)"), rejected: m("assistant", "Answer to Hi") });
  assert.deepEqual(pairs[1]!.rejected, [{ role: "assistant", content: "Answer to Bye" }]);
  // The trainers read both files.
  const tok = await loadLlama2cTokenizer(sharedData("llama2c/tok512.bin"));
  assert.equal(readSftData(join(dir, "cai.sft.jsonl"), tok).length, 2);
  assert.equal(readDpoData(join(dir, "cai.pairs.jsonl"), tok).length, 2);
});

test("a prompt whose requests keep failing is reported and left out; the others are written", async () => {
  server.reset((body, res) => {
    if (body.messages[0]!.content === "Boom") return void res.writeHead(503).end("down");
    reply(res, `Answer ${body.messages.length}`);
  });
  const { dir, prompts, constitution } = await inputs(["Boom", "Fine"]);
  const r = await runRlhfAsync(["cai", "revise", "--model", server.baseUrl, "--model-name", "fake", "--constitution", constitution, "--prompts", prompts, "--output", join(dir, "out"), "--retries", "1"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /cai revise: failed: prompt 1: .*HTTP 503 \(down\)/);
  const sft = readJsonl(readFileSync(join(dir, "out.sft.jsonl"), "utf8"));
  assert.deepEqual(sft.map((x) => x.prompt), [[{ role: "user", content: "Fine" }]]);
});

test("a local model writes the same files, seeded", async () => {
  const { dir, prompts, constitution } = await inputs(["Once upon a time, Lily"]);
  const args = ["cai", "revise", "--model", sharedData("llama2c/stories260K.bin"), "--constitution", constitution, "--prompts", prompts, "--max-tokens", "24"];
  const first = await runRlhfAsync([...args, "--output", join(dir, "a")]);
  assert.equal(first.status, 0, first.stderr);
  const [record] = readJsonl(readFileSync(join(dir, "a.sft.jsonl"), "utf8"));
  assert.equal((record!.completion as { role: string }[])[0]!.role, "assistant");
  assert.equal((record!.revisions as unknown[]).length, 1);
  const second = await runRlhfAsync([...args, "--output", join(dir, "b")]);
  assert.equal(second.status, 0, second.stderr);
  assert.equal(readFileSync(join(dir, "b.sft.jsonl"), "utf8"), readFileSync(join(dir, "a.sft.jsonl"), "utf8"));
});
