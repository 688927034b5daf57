import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { feedbackCli } from "./cli.ts";
import { userForToken } from "./server/auth.ts";
import { openStore } from "./server/db.ts";
import { createProject } from "./server/projects.ts";

// Runs the CLI in-process and captures what it prints.
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const [log, error, write] = [console.log, console.error, process.stdout.write.bind(process.stdout)];
  console.log = (...a: unknown[]) => out.push(a.join(" ") + "\n");
  console.error = (...a: unknown[]) => err.push(a.join(" ") + "\n");
  process.stdout.write = ((s: string) => (out.push(s), true)) as typeof process.stdout.write;
  try {
    return { code: await feedbackCli(argv), out: out.join(""), err: err.join("") };
  } finally {
    [console.log, console.error, process.stdout.write] = [log, error, write];
  }
}

test("feedback CLI: user add prints a working token once, import reads JSONL, export writes JSON lines", async () => {
  const dir = mkdtempSync(join(tmpdir(), "feedback-cli-"));
  const db = join(dir, "f.sqlite");
  try {
    for (const cmd of [[], ["serve"], ["user"], ["import"], ["generate"], ["export"]]) {
      const r = await cli(...cmd, "--help");
      assert.equal(r.code, 0);
      assert.match(r.out, /usage: rlhf feedback/);
    }
    const added = await cli("user", "add", "alice", "--role", "labeler", "--db", db);
    assert.equal(added.code, 0);
    const token = added.out.trim();
    assert.match(token, /^rlhf_[\w-]{43}$/);
    const store = await openStore({ db });
    assert.equal((await userForToken(store, token))?.name, "alice");
    const stored = await store.db.selectFrom("users").select("token_hash").executeTakeFirstOrThrow();
    assert.ok(!stored.token_hash.includes(token.slice(5)), "only the hash is stored");
    await createProject(store, { name: "proj", task: "pairwise", overlap: 1, guidelines: "", gold_every: 10 });
    await store.close();

    assert.equal((await cli("user", "add", "alice", "--role", "labeler", "--db", db)).code, 1, "duplicate name");
    assert.match((await cli("user", "add", "bob", "--role", "boss", "--db", db)).err, /--role must be admin or labeler/);

    const file = join(dir, "items.jsonl");
    writeFileSync(file, [
      JSON.stringify({ id: "a", prompt: "why?", responses: ["because", "no"] }),
      "",
      JSON.stringify({ prompt: [{ role: "user", content: "hi" }], responses: ["hello", "go away"] }),
    ].join("\n"));
    const imported = await cli("import", "--project", "proj", file, "--db", db);
    assert.equal(imported.code, 0, imported.err);
    assert.match(imported.err, /imported 2 items/);
    writeFileSync(file, JSON.stringify({ prompt: "x", responses: ["only"] }));
    const bad = await cli("import", "--project", "proj", file, "--db", db);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /items\.jsonl:1/);
    assert.equal((await cli("import", "--project", "nope", file, "--db", db)).code, 1);

    const out = join(dir, "prefs.jsonl");
    const exported = await cli("export", "--project", "proj", "--format", "ranking", "--out", out, "--db", db);
    assert.equal(exported.code, 0, exported.err);
    assert.equal(readFileSync(out, "utf8"), "", "nothing answered yet");
    // A write that fails is a failed command: one line naming the path and why, no partial file
    // (a full disk: io/writers.test.ts, as the export writes nothing yet here).
    for (const [bad, why] of [[dir, "it is a directory"], [join(out, "x.jsonl"), "not a directory"]]) {
      const failed = await cli("export", "--project", "proj", "--out", bad!, "--db", db);
      assert.equal(failed.code, 1, `export --out ${bad}`);
      assert.match(failed.err, new RegExp(`^rlhf feedback: cannot write ${bad}: .*${why}`));
      assert.doesNotMatch(failed.err.trim(), /\n|exported/);
    }
    assert.equal((await cli("export", "--project", "proj", "--aggregate", "mean", "--db", db)).code, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
