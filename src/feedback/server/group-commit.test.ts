import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { sql } from "kysely";
import { openStore } from "./db.ts";

test("SQLite group commit: concurrent writes share a commit, a failing one undoes only its own writes, leases go first", async () => {
  const dir = mkdtempSync(join(tmpdir(), "feedback-group-"));
  const store = await openStore({ db: join(dir, "g.sqlite") });
  try {
    const events: string[] = [];
    const user = (name: string) => ({ id: name, name, role: "labeler", token_hash: `hash-${name}`, created_at: 0 });
    // ann and bob write durably (answers); cy does not (a lease).
    const writes = ["ann", "bob", "cy"].map((name) => store.write(async (trx) => {
      await trx.insertInto("users").values(user(name)).execute();
      events.push(`ran ${name}`);
      if (name === "bob") throw new Error("bob fails after writing");
      // Later jobs see earlier ones, as consecutive transactions would.
      return (await trx.selectFrom("users").select("name").orderBy("name").execute()).map((u) => u.name);
    }, { durable: name !== "cy" }).then((seen) => { events.push(`acknowledged ${name}`); return seen; }, (e: Error) => { events.push(`failed ${name}`); throw e; }));
    const [ann, bob, cy] = await Promise.allSettled(writes);
    assert.deepEqual(cy, { status: "fulfilled", value: ["cy"] });
    assert.deepEqual(ann, { status: "fulfilled", value: ["ann", "cy"] });
    assert.equal(bob.status, "rejected");
    assert.deepEqual(events, ["ran cy", "acknowledged cy", "ran ann", "ran bob", "acknowledged ann", "failed bob"],
      "the lease commits on its own, without waiting for the fsync; the answers share one commit and nobody hears before it");
    assert.deepEqual((await store.db.selectFrom("users").select("name").orderBy("name").execute()).map((u) => u.name), ["ann", "cy"]);
    // The lease's commit put synchronous=FULL back.
    const { rows } = await sql<{ synchronous: number }>`pragma synchronous`.execute(store.db);
    assert.equal(rows[0]!.synchronous, 2, "FULL");
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
