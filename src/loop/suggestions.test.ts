// The loop's people labeler with an AI judge's suggestions: `rlhf judge` (against a fake
// OpenAI-compatible judge) on the round's comparisons, whose verdicts reach the feedback server as
// the items' suggestions with the policy that wrote each item; shown to the labeler or hidden, and
// compared with the labeler's answers in the project's stats either way.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { fakeOpenAiServer, reply } from "../ai-feedback/test-helpers.ts";
import { buildApp } from "../feedback/server/app.ts";
import { openStore, type Store } from "../feedback/server/db.ts";
import { addUser } from "../feedback/server/users.ts";
import { Suggestion, type NextItem, type ProjectStats, type ProjectSummary } from "../feedback/shared/schema.ts";
import { tempDir } from "../io/test-helpers.ts";
import { ConfigError } from "../train/config.ts";
import type { Comparison } from "./comparisons.ts";
import { readLoopConfig, type LabelerConfig } from "./config.ts";
import { labelByPeople, suggestionOf } from "./feedback-labeler.ts";
import { judgeVerdicts } from "./judge-labeler.ts";

const judge = fakeOpenAiServer();
let store: Store, app: FastifyInstance, url = "", dir = "";
const tok: Record<string, string> = {};

before(async () => {
  dir = await tempDir();
  store = await openStore({ db: join(dir, "f.sqlite") });
  app = buildApp({ store, staticDir: join(dir, "no-ui") });
  url = await app.listen({ port: 0, host: "127.0.0.1" });
  for (const [name, role] of [["ada", "admin"], ["lin", "labeler"]] as const) tok[name] = (await addUser(store, name, role)).token;
});
after(async () => {
  await app.close();
  await store.close();
});

const comparison = (n: number, a: string, b: string): Comparison => ({
  id: `r1-p${n}-c0`, prompt: `prompt ${n}`, prompt_text: `prompt ${n}`, responses: [a, b], truncated: [false, false], policy: "round-0",
});
const COMPARISONS = [comparison(0, "a short one", "a much longer story"), comparison(1, "the longest story of all", "tiny"), comparison(2, "same size", "also same")];

async function api<T>(who: string, method: string, path: string, body?: unknown): Promise<T | null> {
  const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${tok[who]}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
  return res.status === 204 ? null : ((await res.json()) as T);
}

// Lin answers every item of the project named `name` (once it has items) preferring the shorter response (the judge prefers
// the longer), and keeps what each item showed her.
async function linAnswers(name: string): Promise<NextItem[]> {
  const seen: NextItem[] = [];
  for (;;) {
    const project = (await api<ProjectSummary[]>("lin", "GET", "/api/projects"))!.find((p) => p.name === name);
    if (project && project.progress.total_items > 0) {
      const item = await api<NextItem>("lin", "GET", `/api/projects/${project.id}/next`);
      if (!item) return seen;
      seen.push(item);
      const shorter = [...item.responses].sort((x, y) => x.text.length - y.text.length);
      await api("lin", "POST", `/api/items/${item.id}/answers`, { request_id: `lin-${item.id}`, ranking: shorter.map((r) => r.id) });
    } else await new Promise((r) => setTimeout(r, 20));
  }
}

async function verdicts(sub: string) {
  // The longer response wins with a reason; equal lengths get no verdict (a failed comparison, no suggestion).
  judge.reset((body, res) => {
    const text = body.messages.at(-1)!.content;
    const a = /\[Response A\]\n([\s\S]*?)\n\[End of Response A\]/.exec(text)![1]!, b = /\[Response B\]\n([\s\S]*?)\n\[End of Response B\]/.exec(text)![1]!;
    reply(res, a.length === b.length ? "Both are fine." : `The longer one tells more. Final verdict: [[${a.length > b.length ? "A" : "B"}]]`);
  });
  return (await judgeVerdicts(async (argv) => (await import("../cli/commands/judge.ts")).command.run(argv),
    { type: "judge", judge: judge.baseUrl, model: "fake", args: { retries: 0 } }, COMPARISONS, join(dir, sub))).verdicts;
}

for (const mode of ["shown", "hidden"] as const) {
  test(`judge verdicts become ${mode} suggestions on the round's items, tagged with their policy; kappa against the labeler in the stats`, { timeout: 60_000 }, async () => {
    process.env.OPENAI_API_KEY = "sk-test";
    const judged = await verdicts(mode);
    assert.deepEqual(judged.map((v) => v.id), ["r1-p0-c0", "r1-p1-c0"], "the equal-length comparison failed and gets no suggestion");
    const config: Extract<LabelerConfig, { type: "people" }> = { type: "people", url, api_key: tok.ada, poll_seconds: 0.05, project_prefix: mode, suggestions: mode };
    const name = `${mode}-round-1 (round-0)`;
    const [labels, seen] = await Promise.all([labelByPeople(config, COMPARISONS, 1, () => {}, judged), linAnswers(name)]);
    assert.equal(labels.length, 3);
    const project = (await api<ProjectSummary[]>("ada", "GET", "/api/projects"))!.find((p) => p.name === name)!;
    assert.equal(project.show_suggestions, mode === "shown");
    const withSuggestion = seen.filter((i) => i.suggestion);
    if (mode === "shown") {
      assert.equal(withSuggestion.length, 2);
      for (const item of withSuggestion) {
        const best = item.responses.find((r) => r.id === item.suggestion!.ranking![0])!;
        assert.equal(best.text.length, Math.max(...item.responses.map((r) => r.text.length)), "the judge's pick, the longer response");
        assert.equal(item.suggestion!.judge, `fake@${judge.baseUrl}`);
        assert.match(item.suggestion!.rationale!, /The longer one tells more/);
        assert.ok(item.suggestion!.confidence! > 0.5);
      }
    } else assert.equal(withSuggestion.length, 0, "hidden suggestions never reach the labeler");
    const stats = (await api<ProjectStats>("ada", "GET", `/api/projects/${project.id}/stats`))!;
    // Lin always disagrees with the judge: agreement 0, and with both orientations counted, kappa -1.
    assert.deepEqual(stats.ai_agreement, { suggested_items: 2, items: 2, pairs: 2, agreement: 0, cohen_kappa: -1, judges: [`fake@${judge.baseUrl}`] });
    assert.deepEqual(stats.policies, [{ policy: "round-0", items: 3, complete_items: 3, answers: 3 }]);
  });
}

test("suggestionOf: a judge's tie is a tied ranking; the rationale is the first order's", () => {
  const c = COMPARISONS[0]!;
  assert.deepEqual(suggestionOf({ id: c.id, chosen: c.responses[1], judge: "j", confidence: 0.6, rationale: { ab: "why", ba: "other" } }, c),
    { ranking: [1, 0], confidence: 0.6, judge: "j", rationale: "why" });
  assert.deepEqual(suggestionOf({ id: c.id, chosen: c.responses[0], tie: true, judge: "j", confidence: 0.5, rationale: { ab: null, ba: null } }, c),
    { ranking: [0, 1], ties: [[0, 1]], confidence: 0.5, judge: "j" });
  // Model text the app would refuse (NUL, a lone surrogate, too long) is made to fit, never split inside a pair.
  const long = suggestionOf({ id: c.id, chosen: c.responses[0], judge: "j", confidence: 1, rationale: { ab: `a\u0000b\ud800c${"x".repeat(9_995)}🙂🙂`, ba: null } }, c);
  assert.equal(long.rationale, `ab\ufffdc${"x".repeat(9_995)}`); // 9,999 units: the next pair would end at 10,001
  assert.ok(Suggestion.safeParse(long).success);
});

test("labeler.suggestions is hidden or shown, and needs a judge as rest", async () => {
  const d = await tempDir();
  const file = (lines: string[]) => {
    const path = join(d, "loop.yaml");
    writeFileSync(path, ["policy: m.bin", "prompts: p.jsonl", "eval_prompts: p.jsonl", ...lines].join("\n") + "\n");
    return path;
  };
  const people = (extra: string) => `labeler: {type: people, url: "http://127.0.0.1:1", ${extra}}`;
  assert.throws(() => readLoopConfig(file([people("suggestions: shown")])), (e: Error) => e instanceof ConfigError && /labeler\.suggestions needs an AI judge/.test(e.message));
  assert.throws(() => readLoopConfig(file([people("suggestions: always"), "rest: {type: judge, judge: \"http://127.0.0.1:2/v1\"}"])),
    /labeler\.suggestions must be hidden or shown, got "always"/);
  const config = readLoopConfig(file([people("suggestions: hidden"), "rest: {type: judge, judge: \"http://127.0.0.1:2/v1\", model: m}"]));
  assert.equal(config.labeler.type === "people" && config.labeler.suggestions, "hidden");
});
