import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Task } from "../../shared/schema.ts";
import { openStore, type Store } from "../db.ts";
import { feedbackCli } from "../../cli.ts";
import { buildApp } from "../app.ts";
import { createProject, projectByName } from "../projects.ts";
import { addUser } from "../users.ts";
import { projectStats } from "../stats.ts";
import type { ForeignItem } from "./foreign.ts";
import { exportToTool, importToolFile, parseToolFile, type Tool } from "./tools.ts";

// Hand-written files in the shapes the tools document (Label Studio's Pairwise and Ranker
// results in its JSON export; Argilla 2.x records from records.to_list(flatten=False)).
const labelStudioPairwise = [
  { id: 101, data: { prompt: "Say hi", answer1: "hi", answer2: "go away", policy: "round-0" },
    predictions: [{ model_version: "judge-7b", score: 0.7, result: [{ from_name: "comparison", to_name: "answer1,answer2", type: "pairwise", value: { selected: "right" } }] }],
    annotations: [
      { id: 1, completed_by: { id: 7, email: "ann@example.com" }, result: [{ from_name: "comparison", to_name: "answer1,answer2", type: "pairwise", value: { selected: "left" } }] },
      { id: 2, completed_by: 8, result: [{ from_name: "comparison", to_name: "answer1,answer2", type: "pairwise", value: { selected: "left" } }] },
      { id: 3, completed_by: 9, was_cancelled: true, result: [] },
    ] },
  { id: 102, data: { prompt: "Count to two", answer1: "1 3", answer2: "1 2" },
    annotations: [
      { id: 4, completed_by: { id: 7, email: "ann@example.com" }, result: [{ from_name: "comparison", to_name: "answer1,answer2", type: "pairwise", value: { selected: "right" } }] },
      { id: 5, completed_by: 8, result: [{ from_name: "comparison", to_name: "answer1,answer2", type: "pairwise", value: { selected: "left" } }] },
    ] },
  { id: 103, data: { prompt: "Unlabeled", answer1: "a", answer2: "b" }, annotations: [] },
];

const labelStudioRanker = [
  { id: 1, data: { prompt: "Best color?", items: [{ id: "x", title: "A", body: "red" }, { id: "y", body: "blue" }, { id: "z", body: "green" }] },
    predictions: [{ result: [{ from_name: "rank", to_name: "answers", type: "ranker", value: { ranker: { rank: ["y", "z", "x"] } } }] }],
    annotations: [{ completed_by: "bob", result: [{ from_name: "rank", to_name: "answers", type: "ranker", value: { ranker: { rank: ["z", "x", "y"] } } }] }] },
];

const argillaRanking = [
  { id: "rec-1", fields: { prompt: "Pick one", response_1: "one", response_2: "two", response_3: "three" }, metadata: { source: "x", policy: "round-2" },
    responses: { ranking: [
      { value: ["response_3", "response_1", "response_2"], user_id: "carol", status: "submitted" },
      // Argilla 1.x form, where equal ranks are ties
      { value: [{ value: "response_2", rank: 1 }, { value: "response_3", rank: 1 }, { value: "response_1", rank: 2 }], user_id: "dave", status: "submitted" },
      { value: ["response_1", "response_2", "response_3"], user_id: "erin", status: "discarded" },
    ] },
    suggestions: { ranking: { value: ["response_1", "response_3", "response_2"], score: 0.8, agent: "judge-7b" } }, status: "completed" },
];

const argillaPairwise = [
  { id: "p-1", fields: { prompt: "Q", "reply-1": "good", "reply-2": "bad" }, responses: { preference: [{ value: "reply-1", user_id: "carol" }, { value: "tie", user_id: "dave" }] },
    // Argilla 1.x's list of suggestions
    suggestions: [{ question_name: "preference", value: "tie", score: 0.5, agent: "judge-7b" }] },
];

// Answers in annotator order: imported answers share one time, so their stored order is arbitrary.
const choices = (rs: ForeignItem[]) => rs.map((r) => ({ item: r.item, answers: [...r.answers].sort((a, b) => a.annotator.localeCompare(b.annotator)) }));

async function withStore(fn: (s: Store) => Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), "feedback-interop-"));
  const store = await openStore({ db: join(dir, "f.sqlite") });
  try { await fn(store); } finally { await store.close(); rmSync(dir, { recursive: true, force: true }); }
}

// Import, export, parse the export again: the same items and the same choices by the same people.
async function roundTrip(tool: Tool, task: Task, file: unknown[]) {
  await withStore(async (store) => {
    await createProject(store, { name: "p", task, overlap: 2, guidelines: "", gold_every: 10 });
    const project = await projectByName(store, "p");
    const text = JSON.stringify(file);
    const before = parseToolFile(tool, text, "in.json", task);
    const n = await importToolFile(store, project, tool, text, "in.json");
    assert.equal(n.items, before.length);
    assert.equal(n.answers, before.reduce((s, r) => s + r.answers.length, 0));
    const out = await exportToTool(store, await projectByName(store, "p"), tool);
    const after = parseToolFile(tool, out.json, "out.json", task);
    assert.deepEqual(choices(after), choices(before));
  });
}

test("Label Studio pairwise and ranker tasks round-trip through a project", async () => {
  await roundTrip("label-studio", "pairwise", labelStudioPairwise);
  await roundTrip("label-studio", "ranking", labelStudioRanker);
  const [first] = parseToolFile("label-studio", JSON.stringify(labelStudioPairwise), "f", "pairwise");
  assert.deepEqual([first!.item.suggestion, first!.item.policy], [{ ranking: [1, 0], confidence: 0.7, judge: "judge-7b" }, "round-0"]);
  assert.deepEqual(parseToolFile("label-studio", JSON.stringify(labelStudioRanker), "f", "ranking")[0]!.item.suggestion, { ranking: [1, 2, 0] });
});

test("Argilla ranking (2.x lists and 1.x ranks with ties) and label records round-trip through a project", async () => {
  await roundTrip("argilla", "ranking", argillaRanking);
  await roundTrip("argilla", "pairwise", argillaPairwise);
  const [rec] = parseToolFile("argilla", JSON.stringify(argillaRanking), "f", "ranking");
  assert.deepEqual(rec!.answers.map((a) => [a.annotator, a.ranking, a.ties]), [["carol", [2, 0, 1], []], ["dave", [1, 2, 0], [[1, 2]]]]);
  assert.deepEqual([rec!.item.suggestion, rec!.item.policy], [{ ranking: [0, 2, 1], confidence: 0.8, judge: "judge-7b" }, "round-2"]);
  const [pair] = parseToolFile("argilla", JSON.stringify(argillaPairwise), "f", "pairwise");
  assert.deepEqual(pair!.item.suggestion, { ranking: [0, 1], ties: [[0, 1]], confidence: 0.5, judge: "judge-7b" });
});

test("imported annotations are answers by named labelers: stats count them, and they cannot sign in", async () => {
  await withStore(async (store) => {
    await createProject(store, { name: "p", task: "pairwise", overlap: 2, guidelines: "", gold_every: 10 });
    await importToolFile(store, await projectByName(store, "p"), "label-studio", JSON.stringify(labelStudioPairwise), "in.json");
    const stats = await projectStats(store, await projectByName(store, "p"));
    assert.deepEqual(stats.labelers.map((l) => [l.name, l.answers]).sort(), [["ann@example.com", 2], ["label-studio-user-8", 2]]);
    // Two labelers agree on item 101 and disagree on 102: Fleiss' kappa over A/B/tie by hand,
    // P̄ = (1 + 0)/2 = 0.5, p = (3/4, 1/4, 0), Pe = 0.625, kappa = (0.5 - 0.625)/(1 - 0.625) = -1/3.
    assert.equal(stats.agreement.items, 2);
    assert.ok(Math.abs(stats.agreement.value! - -1 / 3) < 1e-9);
    assert.equal(stats.progress.complete_items, 2); // overlap 2 reached by imported answers
    const users = await store.db.selectFrom("users").select(["name", "token_revoked_at"]).execute();
    assert.ok(users.every((u) => u.token_revoked_at !== null));
    // A name the app cannot hold is refused before anything is written.
    const named = [{ ...labelStudioPairwise[0], id: 200, annotations: [{ completed_by: "John Doe", result: labelStudioPairwise[0]!.annotations[0]!.result }] }];
    await assert.rejects(importToolFile(store, await projectByName(store, "p"), "label-studio", JSON.stringify(named), "in.json"),
      /in\.json: task #1: annotator "John Doe" cannot be a user name here/);
    assert.equal((await projectByName(store, "p")).item_count, 3);
    const nul = [{ id: 201, data: { prompt: "p", answer1: "a\u0000", answer2: "b" } }];
    await assert.rejects(importToolFile(store, await projectByName(store, "p"), "label-studio", JSON.stringify(nul), "in.json"),
      /in\.json: task #1: response 1: NUL characters are not allowed/);
  });
});

test("bad files are refused with one line naming the record and the field", () => {
  const bad = (tool: Tool, task: Task, file: unknown, message: RegExp) =>
    assert.throws(() => parseToolFile(tool, typeof file === "string" ? file : JSON.stringify(file), "f.json", task), (e: Error) => message.test(e.message) && !e.message.includes("\n"));
  bad("label-studio", "pairwise", { data: {} }, /f\.json: expected a JSON array of Label Studio tasks/);
  bad("label-studio", "pairwise", [{ id: 5, data: { prompt: "p", answer1: "a" } }], /task #1 \(id 5\): data\.answer2: expected a string/);
  bad("label-studio", "pairwise", [{ data: { prompt: "p", answer1: "a", answer2: "b" }, annotations: [{ completed_by: 1, result: [{ type: "pairwise", value: { selected: "middle" } }] }] }],
    /task #1: annotations\[0\]\.result: value\.selected: expected "left" or "right"/);
  bad("label-studio", "ranking", [labelStudioRanker[0], { ...labelStudioRanker[0], id: 2, annotations: [{ completed_by: "bob", result: [{ type: "ranker", value: { ranker: { rank: ["x", "y"] } } }] }] }],
    /task #2 \(id 2\): annotations\[0\]\.result: value\.ranker: must list every id of data\.items exactly once/);
  bad("label-studio", "rating", [], /pairwise and ranking projects; this project's task is rating/);
  bad("label-studio", "pairwise", [{ data: { prompt: "p", answer1: "a", answer2: "b" }, predictions: [{ score: 3, result: [] }] }], /task #1: predictions\[0\]: score: expected a number from 0 to 1/);
  bad("argilla", "ranking", [{ id: "r", fields: { prompt: "p", response_1: "a", response_2: "b" }, responses: { ranking: [{ value: ["response_1", "response_9"], user_id: "u" }] } }],
    /record #1 \(record "r"\): responses\.ranking\[0\]: value: "response_9" is not one of the response fields response_1, response_2/);
  bad("argilla", "ranking", '{"fields": {"prompt": "p", "response_1": "a", "response_2": "b"}}\n{"fields": {"prompt": "p", "response_1": "a"}}\n',
    /f\.json:2: fields: expected 2\+ response fields/);
  bad("argilla", "pairwise", [{ fields: { prompt: "p", response_1: "a", response_2: "b" }, responses: { q: [{ value: "response_1" }] } }], /responses\.q\[0\]: user_id: expected a string/);
  bad("argilla", "pairwise", [{ fields: { prompt: "p", response_1: "a", response_2: "b" }, suggestions: { q: { value: "response_1", score: 7 } } }], /record #1: suggestions\.q: score: expected a number from 0 to 1/);
  bad("argilla", "pairwise", [{ fields: { prompt: "p", response_1: "a", response_2: "b" }, suggestions: { q: { value: "response_3" } } }], /suggestions\.q: value: "response_3" is not one of the response fields/);
});

test("HTTP: POST .../import?from= and GET .../export?format= take and give the tools' JSON; bad files and rating projects are 400s", async () => {
  await withStore(async (store) => {
    const app = buildApp({ store, staticDir: tmpdir() });
    try {
      const { token } = await addUser(store, "root", "admin");
      const p = await createProject(store, { name: "p", task: "ranking", overlap: 2, guidelines: "", gold_every: 10 });
      const r = await createProject(store, { name: "r", task: "rating", overlap: 2, guidelines: "", gold_every: 10 });
      await importToolFile(store, await projectByName(store, "p"), "argilla", JSON.stringify(argillaRanking), "in.json");
      const get = (id: string, format: string) => app.inject({ method: "GET", url: `/api/projects/${id}/export?format=${format}`, headers: { authorization: `Bearer ${token}` } });
      const res = await get(p.id, "argilla");
      assert.equal(res.statusCode, 200, res.body);
      assert.match(String(res.headers["content-type"]), /^application\/json/);
      assert.deepEqual(choices(parseToolFile("argilla", res.body, "http", "ranking")), choices(parseToolFile("argilla", JSON.stringify(argillaRanking), "f", "ranking")));
      const ls = await get(p.id, "label-studio");
      assert.equal(ls.statusCode, 200);
      // dave's tie cannot be written as a Label Studio ranker result, so only carol's answer is there
      assert.deepEqual((ls.json() as { annotations: unknown[] }[])[0]!.annotations.length, 1);
      const post = (id: string, from: string, body: unknown) => app.inject({ method: "POST", url: `/api/projects/${id}/import?from=${from}`, headers: { authorization: `Bearer ${token}` }, payload: body as object });
      const q = await createProject(store, { name: "q", task: "pairwise", overlap: 2, guidelines: "", gold_every: 10 });
      const imported = await post(q.id, "label-studio", labelStudioPairwise);
      assert.equal(imported.statusCode, 201, imported.body);
      assert.deepEqual(imported.json(), { imported: 3, answers: 4 });
      const again = await post(q.id, "label-studio", labelStudioPairwise);
      assert.equal(again.statusCode, 409); // the task ids are in the project already
      const wrong = await post(q.id, "argilla", [{ fields: { prompt: "p", response_1: "a" } }]);
      assert.equal(wrong.statusCode, 400);
      assert.match(wrong.json().error, /^body: record #1: fields: expected 2\+ response fields/);
      assert.equal((await post(q.id, "labelbox", labelStudioPairwise)).statusCode, 400);
      const three = await post(q.id, "argilla", [{ fields: { prompt: "p", response_1: "a", response_2: "b", response_3: "c" }, responses: { best: [{ value: "response_3", user_id: "u" }] } }]);
      assert.equal(three.statusCode, 400);
      assert.equal(three.json().error, "body: record #1: a pairwise project needs exactly 2 responses, found 3");
      const bad = await get(r.id, "label-studio");
      assert.equal(bad.statusCode, 400);
      assert.match(bad.json().error, /pairwise and ranking projects; this project's task is rating/);
    } finally { await app.close(); }
  });
});

test("CLI: feedback import --from and export --format write the tool's file; a bad file fails in one line", async () => {
  const dir = mkdtempSync(join(tmpdir(), "feedback-interop-cli-"));
  const [db, input, output] = ["f.sqlite", "ranker.json", "out.json"].map((f) => join(dir, f));
  const errors: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => { errors.push(a.join(" ")); };
  try {
    const store = await openStore({ db: db! });
    await createProject(store, { name: "p", task: "ranking", overlap: 1, guidelines: "", gold_every: 10 });
    await store.close();
    writeFileSync(input!, JSON.stringify(labelStudioRanker));
    assert.equal(await feedbackCli(["import", "--project", "p", "--from", "label-studio", input!, "--db", db!]), 0);
    assert.equal(await feedbackCli(["export", "--project", "p", "--format", "label-studio", "--out", output!, "--db", db!]), 0);
    assert.deepEqual(choices(parseToolFile("label-studio", readFileSync(output!, "utf8"), "out", "ranking")), choices(parseToolFile("label-studio", JSON.stringify(labelStudioRanker), "in", "ranking")));
    writeFileSync(input!, "[{\"data\": {\"prompt\": 1}}]");
    errors.length = 0;
    assert.equal(await feedbackCli(["import", "--project", "p", "--from", "argilla", input!, "--db", db!]), 1);
    assert.deepEqual(errors, [`rlhf feedback: ${input}: record #1: fields: expected an object`]);
  } finally {
    console.error = error;
    rmSync(dir, { recursive: true, force: true });
  }
});
