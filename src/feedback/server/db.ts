// Storage for the feedback server: one Kysely instance over SQLite (embedded default) or PostgreSQL
// (several server instances). Queries are written once with Kysely, so every value reaches the
// database as a bound parameter; the few dialect differences (row locks) are flagged by `dialect`.
import { closeSync, existsSync, openSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, sql, type Generated } from "kysely";
import pg from "pg";
import { StoreError } from "./errors.ts";
import { groupCommit, type Work } from "./group-commit.ts";
import { migrate } from "./migrations.ts";
import { holdServerLock } from "./server-lock.ts";

export interface UsersTable {
  id: string; name: string; role: string; token_hash: string; created_at: number;
  // Epoch milliseconds or null: when the token stops working, was revoked, the user was disabled.
  token_expires_at: number | null; token_revoked_at: number | null; disabled_at: number | null;
  last_used_at: number | null; // updated at most once a minute (auth.ts)
}
export interface ProjectsTable {
  id: string; name: string; task: string; overlap: number; guidelines: string; gold_every: number; created_at: number;
  item_count: Generated<number>; complete_count: Generated<number>;
  show_suggestions: number; // 0 | 1: labelers are sent the items' suggestions

}
export interface ItemsTable {
  id: string; project_id: string; external_id: string | null; seq: number;
  prompt: string; // JSON: string or chat messages
  gold: string | null; // JSON GoldAnswer, by response position
  suggestion: string | null; // JSON Suggestion, by response position
  policy: string | null; // what wrote the responses
  is_gold: number; // 0 | 1
  answer_count: number; // non-skip answers, the number the overlap limits
  open: number; // 1 while answer_count < the project's overlap
  created_at: number;
}
export interface ResponsesTable { id: string; item_id: string; position: number; text: string }
// A lease: the item a labeler was served and has not answered yet, with the order they saw.
export interface AssignmentsTable {
  item_id: string; labeler_id: string; project_id: string; shown_order: string; served_at: number; expires_at: number;
}
export interface AnswersTable {
  id: string; project_id: string; item_id: string; labeler_id: string; request_id: string;
  skip: number; ranking: string | null; ties: string | null; ratings: string | null; rationale: string | null;
  shown_order: string; served_at: number; answered_at: number;
  item_open: number; // 1 while the item is a non-gold item below its overlap (items.open), for progress counts
}
export interface Tables {
  users: UsersTable; projects: ProjectsTable; items: ItemsTable; responses: ResponsesTable;
  assignments: AssignmentsTable; answers: AnswersTable;
}

export type Dialect = "sqlite" | "postgres";
export interface Store {
  db: Kysely<Tables>;
  dialect: Dialect;
  // A read-decide-write in one transaction; resolves after it commits. `durable`: the commit must
  // survive a crash before this resolves (answers); leases need not. SQLite groups concurrent
  // writes into one commit (group-commit.ts); PostgreSQL runs a transaction per call, whose
  // commits are durable and which PostgreSQL groups itself.
  write<T>(work: Work<Tables, T>, opts: { durable: boolean }): Promise<T>;
  close(): Promise<void>;
}

export interface StoreOptions {
  db?: string; databaseUrl?: string;
  /**
   * Opening for `feedback serve`: on SQLite, hold the file's server lock (a second server on the
   * same file refuses to start; the CLI's other commands may still use it) and check the file's
   * integrity. Both databases are checked for writability on every open.
   */
  server?: boolean;
}

// COUNT(*) and BIGINT columns come back from pg as strings; every such value here is far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export async function openStore(opts: StoreOptions): Promise<Store> {
  return opts.databaseUrl ? openPostgres(opts.databaseUrl) : openSqlite(opts.db ?? "feedback.sqlite", opts.server ?? false);
}

// Every start-up failure is one StoreError naming the database; the CLI prints it as one line.
async function checked<T>(where: string, step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (e instanceof StoreError) throw e;
    throw new StoreError(`${where}: ${(e as Error).message}`);
  }
}

async function openPostgres(url: string): Promise<Store> {
  if (!/^postgres(ql)?:\/\//.test(url)) throw new StoreError("--database-url must start with postgres://");
  const where = `PostgreSQL at ${url.replace(/\/\/[^@/]*@/, "//")}`; // without the password
  const pool = new pg.Pool({ connectionString: url, max: 20 });
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  const store: Store = { db, dialect: "postgres", write: (work) => db.transaction().execute(work), close: () => db.destroy() };
  try {
    const readOnly = await checked(where, async () => (await sql<{ transaction_read_only: string }>`show transaction_read_only`.execute(db)).rows[0]!.transaction_read_only);
    if (readOnly === "on") throw new StoreError(`${where}: the database is read-only (a standby?); the server needs to write`);
    await checked(where, () => migrate(db));
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

async function openSqlite(file: string, server: boolean): Promise<Store> {
  // Answers and tokens are private: a new database file (and the -wal and -shm files SQLite
  // creates beside it with the same mode) is readable by its owner only.
  if (existsSync(file) && statSync(file).isDirectory()) throw new StoreError(`${file} is a directory; --db takes a SQLite database file`);
  await checked(file, () => { if (!existsSync(file)) closeSync(openSync(file, "wx", 0o600)); });
  const lock = server ? holdServerLock(file) : undefined;
  let sqlite: Database.Database | undefined;
  try {
    sqlite = await checked(file, () => new Database(file));
    const s = sqlite;
    await checked(`${file} (is it a SQLite database?)`, () => s.pragma("journal_mode = WAL"));
    // FULL fsyncs the WAL on every commit: an answer acknowledged over HTTP survives kill -9 and power
    // loss. Concurrent answers share a commit (group-commit.ts), so the fsyncs do not queue up.
    s.pragma("synchronous = FULL");
    s.pragma("foreign_keys = ON");
    s.pragma("busy_timeout = 5000");
    if (server) {
      const problems = await checked(file, () => s.pragma("quick_check(5)") as { quick_check: string }[]);
      if (problems[0]?.quick_check !== "ok") {
        throw new StoreError(`${file} is corrupt (${problems.map((p) => p.quick_check).join("; ")}); restore it from a backup`);
      }
    }
    // A file opened without write permission opens read-only, and would fail only at the first
    // answer: write the header's user_version (to its own value) now instead.
    await checked(`${file}: cannot write the database`, () => s.pragma(`user_version = ${Number(s.pragma("user_version", { simple: true }))}`));
  } catch (e) {
    sqlite?.close();
    lock?.release();
    throw e;
  }
  const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  const store: Store = { db, dialect: "sqlite", write: groupCommit(db), close: async () => { await db.destroy(); lock?.release(); } };
  try {
    await checked(file, () => migrate(db));
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

// Kysely prepares every query afresh; reusing prepared statements saves a good share of the CPU
// time per request. Safe because Kysely runs one SQLite query at a time and never streams here.
function withStatementCache(sqlite: Database.Database) {
  const cache = new Map<string, Database.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (!stmt) {
        if (cache.size >= 1000) cache.clear(); // `IN (?, ?, ...)` lists make an open-ended set of texts
        stmt = sqlite.prepare(sql);
        cache.set(sql, stmt);
      }
      return stmt;
    },
  };
}

export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === "23505" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
