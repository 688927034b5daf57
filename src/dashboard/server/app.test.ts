import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CSP } from "../../feedback/server/static.ts";
import type { RunSummary, RunUpdate } from "../shared/schema.ts";
import { buildDashboard } from "./app.ts";
import { RunDir } from "./run-dir.ts";

const dir = mkdtempSync(join(tmpdir(), "dashboard-app-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r) + "\n").join("");

const run = join(dir, "online-dpo");
mkdirSync(join(run, "checkpoint-10"), { recursive: true });
mkdirSync(join(run, "checkpoint-5"));
writeFileSync(join(run, "metrics.jsonl"), jsonl([{ step: 1, loss: 0.69, "objective/kl": null }, { step: 2, loss: 0.6, note: "text is dropped" }]));
writeFileSync(join(run, "samples.jsonl"), jsonl([
  { step: 1, prompt: "p", chosen: "good", rejected: "bad", chosen_score: 1, rejected_score: -1 }, // online DPO
  { prompt: [{ role: "user", content: "hi" }], sample: 0, completion: "hello", reward: 0.5, reference_completion: "yo", reference_reward: 0.1, kl: 2 }, // rlhf eval --samples
  { step: 3, completion: "no prompt" }, // not a sample: skipped
]));
writeFileSync(join(run, "eval.json"), JSON.stringify({ reward: 1, kl: 3, reference_reward: 0, win_rate: 0.7, length: 48 }));
writeFileSync(join(run, "eval-other.json"), JSON.stringify({ accuracy: 0.7 })); // rlhf rm eval's report: not a point
writeFileSync(join(run, "checkpoint-10", "eval.json"), JSON.stringify({ reward: 0.5, kl: 2 }));
writeFileSync(join(run, "checkpoint-5", "eval.json"), JSON.stringify({ reward: 0.2, kl: 1 }));
const empty = join(dir, "empty");
mkdirSync(empty);

const app = buildDashboard({ runs: [new RunDir(run), new RunDir(empty)], staticDir: join(dir, "no-client"), log: { write() {} } });
after(() => app.close());
const get = async <T>(url: string) => {
  const r = await app.inject({ method: "GET", url });
  return { status: r.statusCode, headers: r.headers, body: r.json() as T };
};

test("runs are listed by index and name; every answer has the CSP and API answers no-store", async () => {
  const r = await get<RunSummary[]>("/api/runs");
  assert.deepEqual(r.body.map(({ index, name }) => ({ index, name })), [{ index: 0, name: "online-dpo" }, { index: 1, name: "empty" }]);
  assert.equal(r.headers["content-security-policy"], CSP);
  assert.equal(r.headers["cache-control"], "no-store");
});

test("updates: normalized records from each cursor, evaluations by checkpoint step, a reset on a new generation", async () => {
  const first = await get<RunUpdate>("/api/runs/0/updates");
  assert.equal(first.status, 200);
  assert.equal(first.body.reset, true);
  assert.deepEqual(first.body.metrics, [{ step: 1, loss: 0.69, "objective/kl": null }, { step: 2, loss: 0.6 }]);
  assert.deepEqual(first.body.samples, [
    { step: 1, prompt: "p", completion: "good", score: 1, kl: null, extra: { rejected: "bad", rejected_score: -1 } },
    { step: null, prompt: "user: hi", completion: "hello", score: 0.5, kl: 2, extra: { sample: 0, reference_completion: "yo", reference_reward: 0.1 } },
  ]);
  assert.deepEqual(first.body.evals.map((e) => [e.file, e.step, e.kl, e.reward]), [
    ["checkpoint-5/eval.json", 5, 1, 0.2], ["checkpoint-10/eval.json", 10, 2, 0.5], ["eval.json", null, 3, 1],
  ]);
  assert.deepEqual(first.body.checkpoints, [5, 10]);
  const g = first.body.generation;

  appendFileSync(join(run, "metrics.jsonl"), jsonl([{ step: 3, loss: 0.5 }]));
  const next = await get<RunUpdate>(`/api/runs/0/updates?generation=${g}&metrics=2&samples=2`);
  assert.equal(next.body.reset, false);
  assert.deepEqual(next.body.metrics, [{ step: 3, loss: 0.5 }]);
  assert.deepEqual(next.body.samples, []);

  const stale = await get<RunUpdate>(`/api/runs/0/updates?generation=${g + 1}&metrics=3`);
  assert.equal(stale.body.reset, true);
  assert.equal(stale.body.metrics.length, 3);

  const none = await get<RunUpdate>("/api/runs/1/updates");
  assert.deepEqual([none.body.metrics, none.body.samples, none.body.events, none.body.rounds, none.body.evals, none.body.checkpoints], [[], [], [], [], [], []]);
});

test("requests cannot name files, reach other runs, write, or leave the static folder", async () => {
  assert.equal((await get("/api/runs/2/updates")).status, 404);
  assert.equal((await get("/api/runs/..%2f..%2fetc/updates")).status, 400);
  assert.equal((await get("/api/runs/-1/updates")).status, 400);
  assert.equal((await get("/api/runs/0/updates?path=/etc/passwd")).status, 400);
  assert.equal((await get("/api/runs/0/updates?metrics=-1")).status, 400);
  assert.equal((await get("/api/runs/0/metrics.jsonl")).status, 404);
  assert.equal((await get("/..%2f..%2f..%2fetc/passwd")).status, 404);
  for (const method of ["POST", "PUT", "DELETE"] as const) {
    assert.equal((await app.inject({ method, url: "/api/runs", payload: "{}" })).statusCode, 404, method);
  }
});
