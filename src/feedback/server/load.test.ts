// The load test in short, and kill -9 of the server in the middle of it, on SQLite and PostgreSQL.
// PostgreSQL binaries are required (scripts/setup-test-deps.sh installs them); their absence fails.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { runLoad, type LoadReport } from "../../../scripts/feedback-load-test.ts";
import { startPostgres, type Postgres } from "./test-support.ts";

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), "feedback-load-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

function assertClean(r: LoadReport) {
  assert.equal(r.lost_answers, 0, "an acknowledged answer is missing from the database");
  assert.equal(r.duplicate_answers, 0);
  assert.equal(r.over_overlap_items, 0);
  assert.equal(r.answer_count_mismatches, 0);
  assert.equal(r.item_open_mismatches, 0);
  assert.deepEqual(r.http_errors, {});
  // Enough answers for the checks above to mean something; not a speed target (the benchmark,
  // scripts/feedback-load-test.ts, measures speed): a loaded 2-core machine gives ~40 in 5 s on PostgreSQL.
  assert.ok(r.answers_acked >= 20, `only ${r.answers_acked} answers in the run`);
}

test("SQLite: 10 labelers for 5 s lose nothing, duplicate nothing, respect the overlap", async () => {
  const r = await runLoad({ store: { db: join(dir, "load.sqlite") }, labelers: 10, durationMs: 5000, overlap: 3, items: 3000 });
  console.log(`sqlite load: ${r.answers_acked} answers, ${r.answers_per_s}/s, p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms`);
  assertClean(r);
  assert.ok(r.replays_checked > 0);
  assert.equal(r.transport_errors, 0);
  // Generous bound for a shared 2-core CI machine; the script reports the real number.
  assert.ok(r.latency_ms.p99 < 1000, `p99 ${r.latency_ms.p99} ms`);
});

test("SQLite, open loop: judgements arrive at the set rate whatever the server's speed (10 labelers x 4/s for 3 s: about 120)", async () => {
  const r = await runLoad({ store: { db: join(dir, "open.sqlite") }, labelers: 10, durationMs: 3000, overlap: 3, items: 3000, ratePerLabeler: 4 });
  console.log(`sqlite open-loop load: ${r.answers_acked} answers, p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms`);
  assertClean(r);
  assert.equal(r.mode, "open");
  // Poisson with mean 120: 80-160 is four standard deviations either side. A closed loop would answer thousands.
  assert.ok(r.answers_acked >= 80 && r.answers_acked <= 160, `${r.answers_acked} answers`);
});

test("SQLite: kill -9 of the server mid-run loses no acknowledged answer", async () => {
  const r = await runLoad({ store: { db: join(dir, "crash.sqlite") }, labelers: 8, durationMs: 4000, overlap: 2, items: 3000, killAfterMs: 1500 });
  assert.ok(r.server_killed);
  assertClean(r);
});

describe("PostgreSQL", () => {
  let pg: Postgres;
  before(async () => { pg = await startPostgres(); });
  after(() => pg?.stop());

  test("PostgreSQL: concurrent labelers and kill -9 of the server mid-run lose no acknowledged answer", async () => {
    const r = await runLoad({ store: { databaseUrl: pg.url }, labelers: 10, durationMs: 5000, overlap: 2, items: 3000, killAfterMs: 2000 });
    console.log(`postgres load: ${r.answers_acked} answers, ${r.answers_per_s}/s, p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms`);
    assert.ok(r.server_killed);
    assertClean(r);
  });
});
