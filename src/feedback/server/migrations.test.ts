import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { migrations, migrate } from "./migrations.ts";

// A fresh SQLite database migrated up to `name`, for `fn` to fill and then migrate further.
async function at(name: string, fn: (db: Kysely<any>) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "feedback-migrate-"));
  const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new Database(join(dir, "m.sqlite")) }) });
  try {
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    assert.equal((await migrator.migrateTo(name)).error, undefined);
    await fn(db);
  } finally {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("0002 flags the answers whose item is still open, on a database that has answers already", async () => {
  await at("0001_initial", async (db) => {
    await db.insertInto("users").values({ id: "u", name: "ann", role: "labeler", token_hash: "h", created_at: 0 }).execute();
    await db.insertInto("projects").values({ id: "p", name: "p", task: "pairwise", overlap: 2, guidelines: "", gold_every: 10, created_at: 0 }).execute();
    const item = (id: string, open: number, is_gold: number) => ({ id, project_id: "p", external_id: id, seq: 0, prompt: "\"x\"", gold: null, is_gold, answer_count: open ? 1 : 2, open, created_at: 0 });
    await db.insertInto("items").values([item("open", 1, 0), item("done", 0, 0), item("gold", 1, 1)]).execute();
    const answer = (item_id: string) => ({
      id: `a-${item_id}`, project_id: "p", item_id, labeler_id: "u", request_id: item_id, skip: 0, ranking: null, ties: null,
      ratings: null, rationale: null, shown_order: "[]", served_at: 0, answered_at: 0,
    });
    await db.insertInto("answers").values([answer("open"), answer("done"), answer("gold")]).execute();
    await migrate(db);
    const flags = await db.selectFrom("answers").select(["item_id", "item_open"]).orderBy("item_id").execute();
    assert.deepEqual(flags, [{ item_id: "done", item_open: 0 }, { item_id: "gold", item_open: 0 }, { item_id: "open", item_open: 1 }]);
  });
});

test("0004 keeps suggestions hidden in existing projects and leaves existing items without a suggestion or policy", async () => {
  await at("0003_token_lifecycle", async (db) => {
    await db.insertInto("projects").values({ id: "p", name: "p", task: "pairwise", overlap: 1, guidelines: "", gold_every: 10, created_at: 0 }).execute();
    await db.insertInto("items").values({ id: "i", project_id: "p", external_id: null, seq: 0, prompt: "\"x\"", gold: null, is_gold: 0, answer_count: 0, open: 1, created_at: 0 }).execute();
    await migrate(db);
    assert.deepEqual(await db.selectFrom("projects").select("show_suggestions").execute(), [{ show_suggestions: 0 }]);
    assert.deepEqual(await db.selectFrom("items").select(["suggestion", "policy"]).execute(), [{ suggestion: null, policy: null }]);
  });
});
