// rlhf judge against a fake OpenAI-compatible server (node:http) that answers deterministically and
// fails on purpose: 500s, malformed verdicts, slow answers, a position-biased judge.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { RLHF_BIN } from "../cli/test-helpers.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import { fakeOpenAiServer, readJsonl as parseJsonl, reply, runRlhfAsync, type ChatBody } from "./test-helpers.ts";

const server = fakeOpenAiServer();
const reset = server.reset;

/** The two answers shown, from the project's template or FastChat's. */
function answers(body: ChatBody): [string, string] {
  const user = body.messages.find((m) => m.role === "user")!.content;
  const a = /\[Response A\]\n([\s\S]*?)\n\[End of Response A\]/.exec(user) ?? /Assistant A's Answer\]\n([\s\S]*?)\n\[The End/.exec(user);
  const b = /\[Response B\]\n([\s\S]*?)\n\[End of Response B\]/.exec(user) ?? /Assistant B's Answer\]\n([\s\S]*?)\n\[The End/.exec(user);
  return [a![1]!, b![1]!];
}

const goodness = (text: string) => text.split("good").length - 1;

/** A fair judge: the answer saying "good" more often wins; equal counts are a tie. */
function fairVerdict(body: ChatBody): string {
  const [a, b] = answers(body);
  const v = goodness(a) > goodness(b) ? "A" : goodness(a) < goodness(b) ? "B" : "C";
  return `Comparing the two: one is better. Final verdict: [[${v}]]`;
}

const run = (args: string[], env: Record<string, string> = {}) => runRlhfAsync(["judge", ...args], env);

const readJsonl = (path: string) => parseJsonl(readFileSync(path, "utf8"));

// People's labels: three pairs where the chosen answer is the "good" one, one where it is not.
const PAIRS = [
  { prompt: "Tell me a story.", chosen: "A good story.", rejected: "A story." },
  { prompt: "Say hi.", chosen: "Hi, good day.", rejected: "Hi." },
  { prompt: "Name a fruit.", chosen: "Apple, a good fruit.", rejected: "Rock." },
  { prompt: "Count to two.", chosen: "One two.", rejected: "One, two, good." },
];

async function pairsFile(): Promise<{ dir: string; data: string }> {
  const dir = await tempDir();
  const data = join(dir, "pairs.jsonl");
  writeFileSync(data, PAIRS.map((p) => JSON.stringify(p)).join("\n") + "\n");
  return { dir, data };
}

test("pairs are judged in both orders, labelled with confidence and rationale, agreement and kappa reported; a rerun asks nothing", async () => {
  reset((body, res) => reply(res, fairVerdict(body)));
  const { dir, data } = await pairsFile();
  const output = join(dir, "labels.jsonl");
  const r = await run(["--judge", server.baseUrl, "--judge-model", "fake", "--data", data, "--output", output], { OPENAI_API_KEY: "sk-test" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(server.requests.length, 8, "two orders per pair");
  assert.ok(server.requests.every((b) => b.model === "fake" && b.temperature === 0 && b.messages[0]!.role === "system"));
  const records = readJsonl(output);
  assert.equal(records.length, 4);
  for (const rec of records) {
    assert.ok(goodness(rec.chosen as string) > goodness(rec.rejected as string));
    assert.deepEqual(rec.order, { ab: "A", ba: "B" });
    assert.equal(rec.confidence, 1);
    assert.equal(rec.tie, undefined);
    assert.equal(rec.judge, `fake@${server.baseUrl}`);
    assert.match((rec.rationale as { ab: string }).ab, /Final verdict: \[\[A\]\]/);
  }
  const summary = JSON.parse(r.stdout) as { agreement: { pairs: number; agreement: number; cohen_kappa: number }; requests: number; failed: number };
  assert.equal(summary.failed, 0);
  assert.equal(summary.agreement.pairs, 4);
  assert.equal(summary.agreement.agreement, 0.75);
  assert.ok(Math.abs(summary.agreement.cohen_kappa - 0.5) < 1e-12, "2·agreement − 1 without ties");
  assert.deepEqual(JSON.parse(readFileSync(join(dir, "labels.summary.json"), "utf8")).agreement, summary.agreement);

  reset(() => assert.fail("a rerun must not ask the server"));
  const again = await run(["--judge", server.baseUrl, "--judge-model", "fake", "--data", data, "--output", join(dir, "again.jsonl"), "--cache", join(dir, "labels.cache.jsonl")]);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(server.requests.length, 0);
  assert.deepEqual(readJsonl(join(dir, "again.jsonl")), records);
  assert.equal((JSON.parse(again.stdout) as { cached_answers: number }).cached_answers, 8);
});

test("after a kill -9 mid-run, the rerun asks only what the cache does not hold", async () => {
  const { dir, data } = await pairsFile();
  const output = join(dir, "labels.jsonl");
  let answered = 0;
  let kill = () => {};
  reset(async (body, res) => {
    // Three answers, then silence until the judge is killed (200 ms: time to cache the third).
    if (answered === 3) return void (await new Promise((resolve) => res.on("close", resolve)));
    reply(res, fairVerdict(body));
    if (++answered === 3) setTimeout(kill, 200);
  });
  const child = spawn(process.execPath, [RLHF_BIN, "judge", "--judge", server.baseUrl, "--judge-model", "fake", "--data", data, "--output", output, "--concurrency", "1"], { stdio: "ignore" });
  kill = () => child.kill("SIGKILL");
  await new Promise((resolve) => child.on("close", resolve));
  assert.equal(existsSync(output), false, "killed before writing");
  const cached = readFileSync(join(dir, "labels.cache.jsonl"), "utf8").split("\n").filter(Boolean).length;
  assert.equal(cached, 3);
  reset((body, res) => reply(res, fairVerdict(body)));
  const r = await run(["--judge", server.baseUrl, "--judge-model", "fake", "--data", data, "--output", output]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(server.requests.length, 8 - cached);
  assert.equal(readJsonl(output).length, 4);
});

test("a position-biased judge (always [[A]]) cancels out: every pair is a tie record", async () => {
  reset((_, res) => reply(res, "The first one. [[A]]"));
  const { dir, data } = await pairsFile();
  const output = join(dir, "labels.jsonl");
  const r = await run(["--judge", server.baseUrl, "--judge-model", "biased", "--data", data, "--output", output]);
  assert.equal(r.status, 0, r.stderr);
  const records = readJsonl(output);
  assert.equal(records.length, 4);
  for (const rec of records) {
    assert.equal(rec.tie, true);
    assert.equal(rec.confidence, 0.5);
    assert.deepEqual(rec.order, { ab: "A", ba: "A" });
  }
  const agreement = (JSON.parse(r.stdout) as { agreement: { agreement: number; judge_ties: number; cohen_kappa: number } }).agreement;
  assert.equal(agreement.judge_ties, 4);
  assert.equal(agreement.agreement, 0);
  assert.equal(agreement.cohen_kappa, 0);
});

test("500s and 429s are retried; a malformed verdict is retried, then recorded as failed, never guessed", async () => {
  const seen = new Map<string, number>();
  reset((body, res) => {
    const key = JSON.stringify(body.messages);
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    const [a, b] = answers(body);
    if ([a, b].includes("Rock.")) return reply(res, "Both have merit; I pick [[A]] or maybe [[B]].");
    if (n === 1) return void res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "overloaded" } }));
    if (n === 2) return void res.writeHead(429, { "retry-after": "0" }).end("slow down");
    reply(res, fairVerdict(body));
  });
  const { dir, data } = await pairsFile();
  const output = join(dir, "labels.jsonl");
  const r = await run(["--judge", server.baseUrl, "--judge-model", "flaky", "--data", data, "--output", output, "--retries", "2"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /retry 1\/2: .*HTTP 500 \(overloaded\)/);
  assert.match(r.stderr, /HTTP 429/);
  const records = readJsonl(output);
  assert.equal(records.length, 3, "the malformed pair is not written");
  assert.ok(records.every((rec) => rec.confidence === 1));
  const summary = JSON.parse(readFileSync(join(dir, "labels.summary.json"), "utf8")) as { failed: number; failures: { where: string; reason: string }[] };
  assert.equal(summary.failed, 1);
  assert.match(summary.failures[0]!.where, /pairs\.jsonl:3$/);
  assert.match(summary.failures[0]!.reason, /unparsable verdict/);
  // 3 attempts for each order of the malformed pair; 3 per order of the others (500, 429, answer).
  assert.equal(server.requests.length, 2 * 3 + 6 * 3);
});

test("a 400 context_length_exceeded fails that pair only (OpenAI's error shape, as rlhf serve answers it)", async () => {
  reset((body, res) => {
    if (answers(body).includes("Rock.")) {
      return void res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "This model's maximum context length is 512 tokens.", type: "invalid_request_error", param: "max_tokens", code: "context_length_exceeded" } }));
    }
    reply(res, fairVerdict(body));
  });
  const { dir, data } = await pairsFile();
  const r = await run(["--judge", server.baseUrl, "--judge-model", "small", "--data", data, "--output", join(dir, "o.jsonl")]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(server.requests.length, 8, "not retried");
  const summary = JSON.parse(readFileSync(join(dir, "o.summary.json"), "utf8")) as { judged: number; failures: { reason: string }[] };
  assert.equal(summary.judged, 3);
  assert.match(summary.failures[0]!.reason, /HTTP 400 \(This model's maximum context length is 512 tokens\.\); a smaller --max-tokens may fit/);
});

test("--concurrency caps the requests in flight", async () => {
  reset(async (body, res) => {
    await new Promise((resolve) => setTimeout(resolve, 150));
    reply(res, fairVerdict(body));
  });
  const { dir, data } = await pairsFile();
  const r = await run(["--judge", server.baseUrl, "--judge-model", "slow", "--data", data, "--output", join(dir, "o.jsonl"), "--concurrency", "3"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(server.requests.length, 8);
  assert.equal(server.maxInFlight, 3);
});

test("K responses: all K(K-1)/2 pairs judged, written as pairs or ranked by Copeland score", async () => {
  reset((body, res) => reply(res, fairVerdict(body)));
  const dir = await tempDir();
  const data = join(dir, "items.jsonl");
  // goodness 1, 0, 2, 1: responses 0 and 3 tie with each other.
  writeFileSync(data, JSON.stringify({ id: "item-1", prompt: "Q", responses: ["good", "meh", "good good", "good!"], ranking: [2, 0, 3, 1] }) + "\n");
  const r = await run(["--judge", server.baseUrl, "--judge-model", "fake", "--data", data, "--output", join(dir, "pairs.jsonl")]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(server.requests.length, 12);
  const pairs = readJsonl(join(dir, "pairs.jsonl"));
  assert.equal(pairs.length, 6);
  assert.ok(pairs.every((p) => p.id === "item-1"), "the feedback app's item id is carried");
  const tie = pairs.filter((p) => p.tie === true);
  assert.equal(tie.length, 1);
  assert.deepEqual([...(tie[0]!.responses_index as number[])].sort(), [0, 3]);
  // People ranked 0 above 3, the judge tied them: 5 of 6 agree.
  assert.equal((JSON.parse(r.stdout) as { agreement: { agreement: number } }).agreement.agreement, 5 / 6);

  const ranked = await run(["--judge", server.baseUrl, "--judge-model", "fake", "--data", data, "--output", join(dir, "ranking.jsonl"), "--format", "ranking", "--cache", join(dir, "pairs.cache.jsonl")]);
  assert.equal(ranked.status, 0, ranked.stderr);
  assert.equal(server.requests.length, 12, "answers reused from the cache");
  const [rec] = readJsonl(join(dir, "ranking.jsonl"));
  assert.deepEqual(rec!.scores, [1.5, 0, 3, 1.5]);
  assert.deepEqual((rec!.ranking as number[])[0], 2);
  assert.deepEqual((rec!.ranking as number[])[3], 1);
  assert.deepEqual(rec!.ties, [[0, 3]]);
  assert.equal(rec!.id, "item-1");
});

test("FastChat's pair-v2 template and a constitution: one seeded principle per pair, appended to the system prompt", async () => {
  reset((body, res) => reply(res, fairVerdict(body)));
  const { dir, data } = await pairsFile();
  const constitution = join(dir, "constitution.txt");
  writeFileSync(constitution, "# principles\nChoose the kinder response.\nChoose the more honest response.\nChoose the shorter response.\n");
  const pairV2 = readFileSync(sharedData("mt-bench/judge_prompts.jsonl"), "utf8").split("\n").map((l) => (l ? JSON.parse(l) : null)).find((t) => t?.name === "pair-v2") as { system_prompt: string };
  const args = ["--judge", server.baseUrl, "--judge-model", "fake", "--data", data, "--template", `${sharedData("mt-bench/judge_prompts.jsonl")}:pair-v2`, "--constitution", constitution, "--seed", "7"];
  const first = await run([...args, "--output", join(dir, "a.jsonl")]);
  assert.equal(first.status, 0, first.stderr);
  for (const body of server.requests) {
    assert.ok(body.messages[0]!.content.startsWith(pairV2.system_prompt));
    assert.match(body.messages[0]!.content, /\n\nJudge the responses by this principle: Choose the (kinder|more honest|shorter) response\.$/);
    assert.match(body.messages[1]!.content, /^\[User Question\]\n/);
  }
  const records = readJsonl(join(dir, "a.jsonl"));
  assert.ok(records.every((rec) => /^Choose the (kinder|more honest|shorter) response\.$/.test(rec.principle as string)));
  // Both orders of a pair share its principle.
  const byPrompt = new Map<string, Set<string>>();
  for (const body of server.requests) {
    const key = answers(body).sort().join("|");
    byPrompt.set(key, (byPrompt.get(key) ?? new Set()).add(body.messages[0]!.content));
  }
  assert.ok([...byPrompt.values()].every((s) => s.size === 1));
  const second = await run([...args, "--output", join(dir, "b.jsonl"), "--cache", join(dir, "none.jsonl")]);
  assert.equal(second.status, 0, second.stderr);
  assert.deepEqual(readJsonl(join(dir, "b.jsonl")).map((r) => r.principle), records.map((r) => r.principle), "the same seed draws the same principles");
});

test("bad input is one line naming the flag or the file", async () => {
  const { dir, data } = await pairsFile();
  const noModel = await run(["--judge", server.baseUrl, "--data", data, "--output", join(dir, "o.jsonl")]);
  assert.equal(noModel.status, 2);
  assert.match(noModel.stderr, /--judge-model is required with a URL source/);
  const badTemplate = await run(["--judge", server.baseUrl, "--judge-model", "m", "--data", data, "--output", join(dir, "o.jsonl"), "--template", `${sharedData("mt-bench/judge_prompts.jsonl")}:single-v1`]);
  assert.equal(badTemplate.status, 1);
  assert.match(badTemplate.stderr, /judge_prompts\.jsonl:5: template "single-v1" is of type "single"/);
  reset((_, res) => void res.writeHead(401).end(JSON.stringify({ error: { message: "bad key" } })));
  const refused = await run(["--judge", server.baseUrl, "--judge-model", "m", "--data", data, "--output", join(dir, "o.jsonl")]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /HTTP 401 \(bad key\); check --api-key/);
  assert.equal(refused.stderr.trim().split("\n").length, 1);
});
