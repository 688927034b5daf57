// AI suggestions and policy tags through the HTTP API: stored at import, sent to labelers only when
// the project shows them, compared with people in the stats, and kept in exports; on SQLite and
// PostgreSQL alike.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FastifyInstance } from "fastify";
import type { NextItem, Project, ProjectStats } from "../shared/schema.ts";
import { buildApp } from "./app.ts";
import { openStore, type Store } from "./db.ts";
import { startPostgres, type Postgres } from "./test-support.ts";
import { addUser } from "./users.ts";

let dir: string, store: Store, app: FastifyInstance;
const tok: Record<string, string> = {};

async function call(who: string, method: "GET" | "POST" | "PATCH", url: string, body?: unknown) {
  const res = await app.inject({ method, url, headers: { authorization: `Bearer ${tok[who]}` }, ...(body === undefined ? {} : { payload: body as object }) });
  return { status: res.statusCode, json: res.body && res.headers["content-type"]?.toString().startsWith("application/json") ? res.json() : undefined, body: res.body };
}

const SUGGESTION = { ranking: [1, 0], confidence: 0.75, judge: "judge-7b@http://127.0.0.1:8000/v1", rationale: "<b>B</b> counts correctly." };

for (const dialect of ["sqlite", "postgres"] as const) describe(`suggestions and policies on ${dialect}`, () => {
  let pg: Postgres | undefined;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "feedback-suggest-"));
    if (dialect === "postgres") pg = await startPostgres();
    store = await openStore(pg ? { databaseUrl: pg.url } : { db: join(dir, "t.sqlite") });
    app = buildApp({ store, staticDir: join(dir, "no-ui") });
    for (const [name, role] of [["root", "admin"], ["ann", "labeler"], ["bob", "labeler"]] as const) tok[name] = (await addUser(store, name, role)).token;
  });
  after(async () => {
    await app?.close();
    await store?.close();
    pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("suggestions reach labelers only in projects that show them; admins switch it per project", async () => {
    const created = await call("root", "POST", "/api/projects", { name: "hidden", task: "pairwise", overlap: 2 });
    assert.equal(created.status, 201, created.body);
    const p = created.json as Project;
    assert.equal(p.show_suggestions, false, "off by default");
    const imported = await call("root", "POST", `/api/projects/${p.id}/items`, [{ id: "c1", prompt: "Count to two", responses: ["1 3", "1 2"], suggestion: SUGGESTION, policy: "round-0" }]);
    assert.equal(imported.status, 201, imported.body);

    const hidden = (await call("ann", "GET", `/api/projects/${p.id}/next`)).json as NextItem;
    assert.equal(hidden.suggestion, undefined);
    assert.ok(!JSON.stringify(hidden).includes("counts correctly"), "nothing of the suggestion is sent");

    assert.equal((await call("ann", "PATCH", `/api/projects/${p.id}`, { show_suggestions: true })).status, 403);
    assert.equal((await call("root", "PATCH", `/api/projects/${p.id}`, { show_suggestions: "yes" })).status, 400);
    assert.equal((await call("root", "PATCH", `/api/projects/${p.id}`, { show_suggestions: true, name: "x" })).status, 400);
    assert.equal((await call("root", "PATCH", "/api/projects/p_missing", { show_suggestions: true })).status, 404);
    const patched = await call("root", "PATCH", `/api/projects/${p.id}`, { show_suggestions: true });
    assert.equal(patched.status, 200, patched.body);
    assert.equal((patched.json as Project).show_suggestions, true);

    // The same lease, asked again: now with the suggestion, by response id in this labeler's terms.
    const shown = (await call("ann", "GET", `/api/projects/${p.id}/next`)).json as NextItem;
    assert.equal(shown.id, hidden.id);
    const byText = new Map(shown.responses.map((r) => [r.text, r.id]));
    assert.deepEqual(shown.suggestion, {
      ranking: [byText.get("1 2"), byText.get("1 3")], ties: null, ratings: null,
      confidence: 0.75, judge: SUGGESTION.judge, rationale: SUGGESTION.rationale,
    });
  });

  test("imports refuse a suggestion that does not fit the item, naming the item", async () => {
    const p = (await call("root", "POST", "/api/projects", { name: "bad", task: "pairwise", overlap: 1 })).json as Project;
    for (const [suggestion, message] of [
      [{ ranking: [0, 5] }, /^body: item #1 \(item "x"\): suggestion refers to response 5|^item #1 \(item "x"\): suggestion refers to response 5/],
      [{ ranking: [0, 1], confidence: 1.5 }, /confidence/],
      [{ ratings: [3, 4] }, /a pairwise task needs `ranking`/],
      [{ ranking: [0, 1], ties: [[0, 0]] }, /ties/],
    ] as const) {
      const r = await call("root", "POST", `/api/projects/${p.id}/items`, [{ id: "x", prompt: "p", responses: ["a", "b"], suggestion }]);
      assert.equal(r.status, 400, `${JSON.stringify(suggestion)}: ${r.body}`);
      assert.match(r.json.error, message);
    }
    assert.equal((await call("root", "POST", `/api/projects/${p.id}/items`, [{ prompt: "p", responses: ["a", "b"], policy: "" }])).status, 400);
  });

  test("stats: Cohen's kappa and agreement of suggestions with the people's majority, and counts by policy; exports keep the policy", async () => {
    const p = (await call("root", "POST", "/api/projects", { name: "kappa", task: "pairwise", overlap: 2, show_suggestions: true })).json as Project;
    assert.equal(p.show_suggestions, true);
    // `better`: what both labelers answer (index in import order); `ai`: the suggestion's.
    const plan = [
      { better: 0, ai: 0, policy: "round-0" }, { better: 1, ai: 1, policy: "round-0" },
      { better: 0, ai: 1, policy: "round-1" }, { better: 1, ai: 1, policy: "round-1" }, { better: 0, ai: null, policy: "round-1" },
    ];
    await call("root", "POST", `/api/projects/${p.id}/items`, plan.map((x, i) => ({
      id: `q${i}`, prompt: `prompt ${i}`, responses: [`first ${i}`, `second ${i}`], policy: x.policy,
      ...(x.ai === null ? {} : { suggestion: { ranking: x.ai === 0 ? [0, 1] : [1, 0], judge: i % 2 ? "j-b" : "j-a" } }),
    })));
    for (const who of ["ann", "bob"]) {
      for (;;) {
        const next = await call(who, "GET", `/api/projects/${p.id}/next`);
        if (next.status === 204) break;
        const item = next.json as NextItem;
        const i = Number(item.prompt.toString().split(" ")[1]);
        const byText = new Map(item.responses.map((r) => [r.text, r.id]));
        const [w, l] = plan[i]!.better === 0 ? [`first ${i}`, `second ${i}`] : [`second ${i}`, `first ${i}`];
        assert.equal((await call(who, "POST", `/api/items/${item.id}/answers`, { request_id: `${who}-${i}`, ranking: [byText.get(w), byText.get(l)] })).status, 201);
      }
    }
    const stats = (await call("root", "GET", `/api/projects/${p.id}/stats`)).json as ProjectStats;
    // Pairs (people, ai): (1,1) (2,2) (1,2) (2,2); the confusion [[1,1],[0,2]] plus its flip (each
    // pair in both orientations) is [[3,1],[1,3]]: p_o = 3/4, p_e = 1/2, kappa = 1/2.
    assert.deepEqual(stats.ai_agreement, { suggested_items: 4, items: 4, pairs: 4, agreement: 0.75, cohen_kappa: 0.5, judges: ["j-a", "j-b"] });
    assert.deepEqual(stats.policies, [
      { policy: "round-0", items: 2, complete_items: 2, answers: 4 },
      { policy: "round-1", items: 3, complete_items: 3, answers: 6 },
    ]);
    const lines = (await call("root", "GET", `/api/projects/${p.id}/export?aggregate=majority`)).body.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.external_id, l.policy]), plan.map((x, i) => [`q${i}`, x.policy]));
    const ranking = (await call("root", "GET", `/api/projects/${p.id}/export?format=ranking`)).body.trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(ranking.every((l) => l.policy === plan[Number(l.external_id.slice(1))]!.policy));
  });
});
