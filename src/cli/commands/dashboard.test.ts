// `rlhf dashboard`: bad input fails with one line naming what is wrong (the page itself is tested
// in test/e2e/dashboard.test.ts, the server in src/dashboard/server/app.test.ts).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../../io/test-helpers.ts";
import { runRlhf, runRlhfOk } from "../test-helpers.ts";

test("--help names the files it reads", () => {
  const out = runRlhfOk(["dashboard", "--help"]).stdout;
  for (const word of ["metrics.jsonl", "events.jsonl", "samples.jsonl", "rounds.jsonl", "eval.json", "--port", "--host"]) assert.ok(out.includes(word), word);
});

test("no run, a missing run and a file instead of a run are refused in one line", async () => {
  const dir = await tempDir();
  const file = join(dir, "metrics.jsonl");
  writeFileSync(file, "");
  for (const [args, message] of [
    [[], /give at least one RUN_DIR/],
    [[join(dir, "nope")], /RUN_DIR .*nope is not a directory/],
    [[file], /RUN_DIR .*metrics\.jsonl is not a directory/],
    [[dir, "--port", "http"], /--port must be a number, got "http"/],
  ] as const) {
    const r = runRlhf(["dashboard", ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});
