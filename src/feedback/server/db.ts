// Storage for the feedback server: one Kysely instance over SQLite (embedded default) or PostgreSQL
// (several server instances). Queries are written once with Kysely, so every value reaches the
// database as a bound parameter; the few dialect differences (row locks) are flagged by `dialect`.
import Database from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, type Generated } from "kysely";
import pg from "pg";
import { groupCommit, type Work } from "./group-commit.ts";
import { migrate } from "./migrations.ts";

export interface UsersTable { id: string; name: string; role: string; token_hash: string; created_at: number }
export interface ProjectsTable {
  id: string; name: string; task: string; overlap: number; guidelines: string; gold_every: number; created_at: number;
  item_count: Generated<number>; complete_count: Generated<number>;
}
export interface ItemsTable {
  id: string; project_id: string; external_id: string | null; seq: number;
  prompt: string; // JSON: string or chat messages
  gold: string | null; // JSON GoldAnswer, by response position
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

export interface StoreOptions { db?: string; databaseUrl?: string }

// COUNT(*) and BIGINT columns come back from pg as strings; every such value here is far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export async function openStore(opts: StoreOptions): Promise<Store> {
  let store: Store;
  if (opts.databaseUrl) {
    if (!/^postgres(ql)?:\/\//.test(opts.databaseUrl)) throw new Error("--database-url must start with postgres://");
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 20 });
    const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
    store = { db, dialect: "postgres", write: (work) => db.transaction().execute(work), close: () => db.destroy() };
  } else {
    const file = opts.db ?? "feedback.sqlite";
    const sqlite = new Database(file);
    sqlite.pragma("journal_mode = WAL");
    // FULL fsyncs the WAL on every commit: an answer acknowledged over HTTP survives kill -9 and power
    // loss. Concurrent answers share a commit (group-commit.ts), so the fsyncs do not queue up.
    sqlite.pragma("synchronous = FULL");
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma("busy_timeout = 5000");
    const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
    store = { db, dialect: "sqlite", write: groupCommit(db), close: () => db.destroy() };
  }
  try {
    await migrate(store.db);
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
