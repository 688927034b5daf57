// `rlhf loop` with people as its labeler, through the real feedback server's HTTP API: the round's
// comparisons become a pairwise project, a labeler answers some of them, the loop is killed with
// SIGKILL while it waits, the labeler answers the rest, and `rlhf loop resume` finds the same
// project (no second one), exports every answer (none lost to the kill) and finishes the round.
// A fake AI judge (rest) suggests verdicts, shown to the labeler; the stats compare them with her.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RLHF_BIN, runRlhfOk } from "../cli/test-helpers.ts";
import { fakeOpenAiServer, reply, runRlhfAsync } from "../ai-feedback/test-helpers.ts";
import { spawnServer } from "../feedback/server/test-support.ts";
import type { NextItem, ProjectStats, ProjectSummary } from "../feedback/shared/schema.ts";
import { sharedData, tempDir } from "../io/test-helpers.ts";
import type { LabeledComparison } from "./comparisons.ts";
import { roundPaths } from "./round.ts";
import { isDone, readJsonLines } from "./run-dir.ts";

// The judge prefers response A whatever it is shown: in both orders, so its verdicts are ties.
const judge = fakeOpenAiServer();

test("rlhf loop labels through the feedback server; killed while people label, it resumes with every answer", { timeout: 240_000 }, async () => {
  const dir = await tempDir();
  const db = join(dir, "feedback.sqlite");
  const admin = runRlhfOk(["feedback", "user", "add", "ada", "--role", "admin", "--db", db]).stdout.trim();
  const lin = runRlhfOk(["feedback", "user", "add", "lin", "--role", "labeler", "--db", db]).stdout.trim();
  const server = await spawnServer(["--db", db]);
  judge.reset((_body, res) => reply(res, "Final verdict: [[A]]"));
  const suggested: NextItem[] = [];
  try {
    const api = async <T>(method: string, path: string, body?: unknown): Promise<T | null> => {
      const res = await fetch(server.url + path, { method, headers: { authorization: `Bearer ${lin}`, ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
      assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
      return res.status === 204 ? null : ((await res.json()) as T);
    };
    // Lin prefers the longer story.
    const answer = async (count: number) => {
      const [project] = (await api<ProjectSummary[]>("GET", "/api/projects"))!;
      for (let n = 0; n < count; n++) {
        const item = (await api<NextItem>("GET", `/api/projects/${project!.id}/next`))!;
        if (item.suggestion) suggested.push(item);
        const ranked = [...item.responses].sort((a, b) => b.text.length - a.text.length);
        await api("POST", `/api/items/${item.id}/answers`, { request_id: `lin-${item.id}`, ranking: ranked.map((r) => r.id) });
      }
    };

    const prompts = ["Once upon a time, there was a cat. It", "Lily went to the park. She", "Tom had a big red ball. He", "The sun was warm. The"];
    writeFileSync(join(dir, "prompts.jsonl"), prompts.map((prompt) => JSON.stringify({ prompt })).join("\n") + "\n");
    const config = join(dir, "loop.yaml");
    writeFileSync(config, [
      `policy: ${sharedData("llama2c/stories260K.bin")}`, "prompts: prompts.jsonl", "eval_prompts: prompts.jsonl", "rounds: 1",
      "sampling: {k: 4, max_new_tokens: 10, batch_size: 4}",
      `labeler: {type: people, url: "${server.url}", poll_seconds: 0.1, project_prefix: test, suggestions: shown}`,
      `rest: {type: judge, judge: "${judge.baseUrl}", model: fake, args: {retries: 0}}`,
      "reward_model: {held_out: 0.25, args: {max_steps: 2, per_device_train_batch_size: 2, max_length: 48}}",
      "dpo: {max_steps: 2, per_device_train_batch_size: 2, max_length: 48, eval_split_ratio: 0.2}",
      "eval: {num_samples: 1, max_new_tokens: 8, batch_size: 4}",
    ].join("\n") + "\n");
    const out = join(dir, "run");
    const env = { ...process.env, RLHF_FEEDBACK_API_KEY: admin, OPENAI_API_KEY: "sk-test" };

    const loop = spawn(process.execPath, [RLHF_BIN, "loop", "run", config, "--output", out], { stdio: ["ignore", "ignore", "pipe"], env });
    let stderr = "";
    loop.stderr.on("data", (d) => (stderr += d));
    const exit = new Promise<NodeJS.Signals | null>((resolve) => loop.on("exit", (_code, signal) => resolve(signal)));
    while (!/0\/8 items labeled/.test(stderr)) {
      if (loop.exitCode !== null) assert.fail(`the loop exited before waiting for labels:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await answer(5);
    while (!/5\/8 items labeled/.test(stderr)) await new Promise((r) => setTimeout(r, 20));
    loop.kill("SIGKILL");
    assert.equal(await exit, "SIGKILL");
    assert.ok(!isDone(out, 0, "label"));
    await answer(3);

    const asked = judge.requests.length;
    assert.equal(asked, 2 * 8, "both orders of the 8 comparisons");
    const resumed = await runRlhfAsync(["loop", "resume", out], { RLHF_FEEDBACK_API_KEY: admin, OPENAI_API_KEY: "sk-test" });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.doesNotMatch(resumed.stderr, /round 0: sample\n/);
    const projects = (await api<ProjectSummary[]>("GET", "/api/projects"))!;
    assert.deepEqual(projects.map((p) => p.name), ["test-round-0 (sft)"], "one project for the round, named with the policy that wrote its items");
    const labels = readJsonLines<LabeledComparison>(roundPaths(out, 0).labels);
    assert.equal(labels.length, 8, "every answer, those before the kill included");
    for (const l of labels) {
      assert.equal(l.labeler, "people:lin");
      assert.ok(l.chosen.length >= l.rejected.length, JSON.stringify(l));
    }
    const [round] = readFileSync(join(out, "rounds.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    assert.equal(round!.labels_total, 8);
    assert.equal(judge.requests.length, asked, "the resumed round asked the judge nothing again (its cache)");
    assert.equal(suggested.length, 8, "every item came with the judge's suggestion");
    assert.ok(suggested.every((i) => i.suggestion!.ties?.length === 1 && i.suggestion!.judge === `fake@${judge.baseUrl}`), "a judge that always says A is a tie");
    const adminApi = await fetch(`${server.url}/api/projects/${projects[0]!.id}/stats`, { headers: { authorization: `Bearer ${admin}` } });
    const stats = (await adminApi.json()) as ProjectStats;
    assert.deepEqual(stats.policies, [{ policy: "sft", items: 8, complete_items: 8, answers: 8 }]);
    assert.deepEqual([stats.ai_agreement.items, stats.ai_agreement.agreement], [8, 0], "lin never ties, the judge always does");
  } finally {
    await server.stop();
  }
});
