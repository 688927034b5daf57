import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import type { AnswerResponse, ImportItemsResponse, NextItem, Project, ProjectStats } from "../shared/schema.ts";
import { buildApp } from "./app.ts";
import { addUser } from "./users.ts";
import { openStore, type Store } from "./db.ts";

let dir: string, store: Store, app: FastifyInstance;
const tok: Record<string, string> = {};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "feedback-app-"));
  mkdirSync(join(dir, "web"));
  writeFileSync(join(dir, "web", "index.html"), "<!doctype html><title>labeling</title>");
  writeFileSync(join(dir, "secret.txt"), "outside the web root");
  store = await openStore({ db: join(dir, "t.sqlite") });
  app = buildApp({ store, staticDir: join(dir, "web") });
  for (const [name, role] of [["root", "admin"], ["ann", "labeler"], ["bob", "labeler"], ["cy", "labeler"]] as const) {
    tok[name] = (await addUser(store, name, role)).token;
  }
});
after(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call(who: string | null, method: "GET" | "POST", url: string, body?: unknown) {
  const res = await app.inject({
    method, url, headers: who ? { authorization: `Bearer ${tok[who] ?? who}` } : {},
    ...(body === undefined ? {} : typeof body === "string" ? { body, headers: { authorization: `Bearer ${tok[who!]}`, "content-type": "application/json" } } : { payload: body as object }),
  });
  const json = res.body && res.headers["content-type"]?.toString().startsWith("application/json") ? res.json() : undefined;
  return { status: res.statusCode, json, body: res.body, headers: res.headers };
}

async function project(name: string, task: string, overlap: number, extra: object = {}): Promise<Project> {
  const r = await call("root", "POST", "/api/projects", { name, task, overlap, guidelines: "# Be *kind*", ...extra });
  assert.equal(r.status, 201, r.body);
  return r.json;
}
async function importItems(p: Project, items: unknown[]): Promise<string[]> {
  const r = await call("root", "POST", `/api/projects/${p.id}/items`, items);
  assert.equal(r.status, 201, r.body);
  return (r.json as ImportItemsResponse).item_ids;
}
const next = async (who: string, p: Project) => call(who, "GET", `/api/projects/${p.id}/next`);
const answer = (who: string, item: string, body: object) => call(who, "POST", `/api/items/${item}/answers`, body);

test("every API route needs a token (401) and the right role (403)", async () => {
  const p = await project("access", "pairwise", 1);
  const routes: ["GET" | "POST", string, string[]][] = [
    ["GET", "/api/me", []], ["GET", "/api/projects", []], ["GET", `/api/projects/${p.id}`, []],
    ["POST", "/api/projects", ["ann"]], ["POST", `/api/projects/${p.id}/items`, ["ann"]],
    ["GET", `/api/projects/${p.id}/next`, ["root"]], ["POST", "/api/items/i_x/answers", ["root"]],
    ["GET", `/api/projects/${p.id}/stats`, ["ann"]], ["GET", `/api/projects/${p.id}/export`, ["ann"]],
  ];
  for (const [method, url, forbidden] of routes) {
    assert.equal((await call(null, method, url, method === "POST" ? {} : undefined)).status, 401, `${method} ${url} without a token`);
    const wrong = await call("rlhf_not-a-real-token", method, url, method === "POST" ? {} : undefined);
    assert.equal(wrong.status, 401);
    assert.deepEqual(Object.keys(wrong.json), ["error"]);
    for (const who of forbidden) assert.equal((await call(who, method, url, method === "POST" ? {} : undefined)).status, 403, `${who} ${method} ${url}`);
  }
  assert.deepEqual((await call("ann", "GET", "/api/me")).json, { id: (await call("ann", "GET", "/api/me")).json.id, name: "ann", role: "labeler" });
});

test("malformed, invalid and oversized bodies are rejected with 400 and 413", async () => {
  assert.equal((await call("root", "POST", "/api/projects", "{not json")).status, 400);
  const bad = await call("root", "POST", "/api/projects", { name: "x", task: "essay", overlap: 1 });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error, /task/);
  assert.equal((await call("root", "POST", "/api/projects", { name: "x", task: "pairwise", overlap: 0 })).status, 400);
  assert.equal((await call("root", "POST", "/api/projects", { name: "x", task: "pairwise", extra: 1 })).status, 400);
  const p = await project("validation", "pairwise", 1);
  assert.equal((await call("root", "POST", `/api/projects/${p.id}/items`, [{ prompt: "p", responses: ["only one"] }])).status, 400);
  assert.equal((await call("root", "POST", `/api/projects/${p.id}/items`, [{ prompt: "p", responses: ["a", "b", "c"] }])).status, 400); // pairwise needs 2
  assert.equal((await call("root", "POST", `/api/projects/${p.id}/items`, [{ prompt: "nul \u0000", responses: ["a", "b"] }])).status, 400);
  const [item] = await importItems(p, [{ prompt: "p", responses: ["a", "b"] }]);
  const big = await answer("ann", item!, { request_id: "r", skip: true, rationale: "x".repeat(100_000) });
  assert.equal(big.status, 413);
  assert.equal((await answer("ann", item!, { request_id: "r" })).status, 400); // no judgement
  assert.equal((await answer("ann", item!, { request_id: "r", skip: true, ranking: ["a", "b"] })).status, 400);
  assert.equal((await call("ann", "GET", "/api/projects/p_nope/next")).status, 404);
  assert.equal((await answer("ann", "i_nope", { request_id: "r", skip: true })).status, 404);
  assert.equal((await call("root", "GET", `/api/projects/${p.id}/export?format=csv`)).status, 400);
});

test("pairwise: shuffled order recorded, idempotent answers, overlap never exceeded, verbatim text", async () => {
  const p = await project("pairs", "pairwise", 2);
  const nasty = `'); DROP TABLE answers; -- <script>alert("x")</script> "quotes" \\ 🙂 \u2028`;
  const [i1, i2] = await importItems(p, [
    { id: "one", prompt: nasty, responses: [`A ${nasty}`, "B <img src=x onerror=alert(1)>"] },
    { id: "two", prompt: [{ role: "user", content: "hi <b>" }], responses: ["x", "y"] },
  ]);
  const n1 = await next("ann", p);
  assert.equal(n1.status, 200);
  const item = n1.json as NextItem;
  assert.equal(item.id, i1);
  assert.equal(item.prompt, nasty);
  assert.deepEqual(item.responses.map((r) => r.text).sort(), [`A ${nasty}`, "B <img src=x onerror=alert(1)>"].sort());
  assert.deepEqual((await next("ann", p)).json.responses, item.responses, "asking again returns the same item and order");
  assert.equal((await answer("ann", i2!, { request_id: "early", skip: true })).status, 409, "not assigned yet");

  const body = { request_id: "req-1", ranking: item.responses.map((r) => r.id).reverse(), rationale: nasty };
  const first = await answer("ann", i1!, body);
  assert.equal(first.status, 201);
  const a = first.json as AnswerResponse;
  assert.deepEqual(a.shown_order, item.responses.map((r) => r.id));
  assert.equal(a.rationale, nasty);
  const again = await answer("ann", i1!, body);
  assert.equal(again.status, 200);
  assert.equal(again.json.id, a.id);
  assert.equal(again.json.replayed, true);
  assert.equal((await answer("ann", i1!, { ...body, request_id: "req-2" })).status, 409, "second answer to the same item");

  const n2 = (await next("ann", p)).json as NextItem;
  assert.equal(n2.id, i2);
  assert.equal((await answer("ann", i2!, { ...body, ranking: n2.responses.map((r) => r.id) })).status, 409, "request_id reused for another item");
  assert.equal((await answer("ann", i2!, { request_id: "req-3", ranking: n2.responses.map((r) => r.id), ties: [[n2.responses[0]!.id, n2.responses[1]!.id]] })).status, 201);
  assert.equal((await next("ann", p)).status, 204);

  // Request ids are per labeler: bob's "req-1" is his own answer, never ann's.
  const b = (await next("bob", p)).json as NextItem;
  assert.equal(b.id, i1);
  const bobs = await answer("bob", i1!, { request_id: "req-1", ranking: b.responses.map((r) => r.id).reverse() });
  assert.equal(bobs.status, 201);
  assert.notEqual(bobs.json.id, a.id);
  assert.equal(bobs.json.rationale, null);
  const b2 = (await next("bob", p)).json as NextItem;
  assert.equal((await answer("bob", b2.id, { request_id: "b2", skip: true })).status, 201);
  // Both items now have overlap 2 answers... except item two, which bob skipped: cy gets it, and only it.
  const c = (await next("cy", p)).json as NextItem;
  assert.equal(c.id, i2);
  assert.equal((await answer("cy", i2!, { request_id: "c1", ranking: c.responses.map((r) => r.id) })).status, 201);
  assert.equal((await next("cy", p)).status, 204);
  const detail = (await call("cy", "GET", `/api/projects/${p.id}`)).json;
  assert.deepEqual(detail.progress, { answered: 1, remaining: 0, total_items: 2, complete_items: 2 });
  assert.equal(detail.guidelines, "# Be *kind*");

  const exported = await call("root", "GET", `/api/projects/${p.id}/export`);
  assert.equal(exported.status, 200);
  assert.match(String(exported.headers["content-type"]), /ndjson/);
  const lines = exported.body.trim().split("\n").map((l) => JSON.parse(l));
  // ann and bob both preferred "B ..." on item one (they reversed a shuffled order... compare by text).
  const one = lines.filter((l) => l.item_id === i1);
  assert.equal(one.length, 2);
  for (const l of one) {
    assert.equal(l.prompt, nasty);
    assert.equal(l.external_id, "one");
    assert.ok(["ann", "bob"].includes(l.labeler));
  }
  // ann tied item two (no preference line); cy's answer is a chat-format line.
  const two = lines.filter((l) => l.item_id === i2);
  assert.equal(two.length, 1);
  assert.deepEqual(two[0].prompt, [{ role: "user", content: "hi <b>" }]);
  assert.equal(two[0].chosen[0].role, "assistant");
  assert.equal(two[0].labeler, "cy");

  const stats = (await call("root", "GET", `/api/projects/${p.id}/stats`)).json as ProjectStats;
  assert.deepEqual(stats.progress, { total_items: 2, complete_items: 2, gold_items: 0, answers: 5, skips: 1 });
  assert.equal(stats.agreement.metric, "fleiss_kappa");
  assert.equal(stats.agreement.items, 2);
  assert.equal(stats.labelers.find((l) => l.name === "bob")!.skips, 1);
});

test("ranking with ties, ratings, gold items, agreement and exports", async () => {
  const p = await project("ranks", "ranking", 2, { gold_every: 2 });
  const [gold, i1] = await importItems(p, [
    { id: "g", prompt: "gold", responses: ["best", "mid", "worst"], gold: { ranking: [0, 1, 2] } },
    { id: "r1", prompt: "rank me", responses: ["r0", "r1", "r2"] },
  ]);
  const textToId = (it: NextItem) => Object.fromEntries(it.responses.map((r) => [r.text, r.id]));
  for (const who of ["ann", "bob"]) {
    const it = (await next(who, p)).json as NextItem;
    assert.equal(it.id, i1, "a regular item first, the gold one second");
    const id = textToId(it);
    const tied = await answer(who, i1!, { request_id: `${who}-bad`, ranking: [id.r0, id.r1, id.r2], ties: [[id.r0, id.r2]] });
    assert.equal(tied.status, 400, "tied responses must be adjacent");
    assert.equal((await answer(who, i1!, { request_id: `${who}-r`, ranking: [id.r0, id.r1, id.r2], ties: [[id.r1, id.r2]] })).status, 201);
    const g = (await next(who, p)).json as NextItem;
    assert.equal(g.id, gold);
    const gid = textToId(g);
    const order = who === "ann" ? [gid.best, gid.mid, gid.worst] : [gid.worst, gid.mid, gid.best];
    assert.equal((await answer(who, gold!, { request_id: `${who}-g`, ranking: order })).status, 201);
  }
  const stats = (await call("root", "GET", `/api/projects/${p.id}/stats`)).json as ProjectStats;
  assert.equal(stats.agreement.metric, "krippendorff_alpha_ordinal");
  assert.equal(stats.agreement.value, 1);
  const ann = stats.labelers.find((l) => l.name === "ann")!;
  const bob = stats.labelers.find((l) => l.name === "bob")!;
  assert.equal(ann.gold_agreement, 1);
  assert.equal(bob.gold_agreement, 0);
  assert.equal(ann.majority_agreement, 1);
  assert.equal(stats.progress.gold_items, 1);

  const ranking = (await call("root", "GET", `/api/projects/${p.id}/export?aggregate=majority`)).body.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(ranking, [{
    prompt: "rank me", responses: ["r0", "r1", "r2"], ranking: [0, 1, 2], ties: [[1, 2]], item_id: i1, external_id: "r1", labelers: ["ann", "bob"],
  }]);
  const prefs = (await call("root", "GET", `/api/projects/${p.id}/export?format=preference`)).body.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(prefs.map((l) => `${l.labeler}:${l.chosen}>${l.rejected}`).sort(), ["ann:r0>r1", "ann:r0>r2", "bob:r0>r1", "bob:r0>r2"]);

  const r = await project("ratings", "rating", 1);
  const [ri] = await importItems(r, [{ prompt: "rate", responses: ["u", "v"] }]);
  const it = (await next("cy", r)).json as NextItem;
  const id = textToId(it);
  assert.equal((await answer("cy", ri!, { request_id: "x", ratings: { [id.u!]: 8, [id.v!]: 1 } })).status, 400);
  assert.equal((await answer("cy", ri!, { request_id: "x", ratings: { [id.u!]: 6 } })).status, 400);
  assert.equal((await answer("cy", ri!, { request_id: "x", ranking: [id.u, id.v] })).status, 400);
  assert.equal((await answer("cy", ri!, { request_id: "x", ratings: { [id.u!]: 6, [id.v!]: 2 } })).status, 201);
  const line = JSON.parse((await call("root", "GET", `/api/projects/${r.id}/export`)).body);
  assert.deepEqual([line.ranking, line.ratings], [[0, 1], [6, 2]]);
});

test("labelers list every project with their own progress; the web UI is served with a CSP", async () => {
  const list = (await call("ann", "GET", "/api/projects")).json;
  assert.ok(list.length >= 3 && list.every((p: { progress: object; guidelines?: string }) => p.progress && p.guidelines === undefined));
  const page = await call(null, "GET", "/");
  assert.equal(page.status, 200);
  assert.match(page.body, /labeling/);
  assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
  assert.equal((await call(null, "GET", "/label/some-project")).status, 200, "client-side routes get index.html");
  assert.equal((await call(null, "GET", "/../secret.txt")).status, 404);
  assert.equal((await call(null, "GET", "/%2e%2e/secret.txt")).status, 404);
  assert.equal((await call(null, "GET", "/api/unknown")).status, 404);
});
