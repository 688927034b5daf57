// Group commit for SQLite. better-sqlite3 is synchronous, so with synchronous=FULL every commit
// blocks the event loop for an fsync (2–5 ms on an idle development machine, more on a busy one):
// with one transaction per answer, 50 labelers spent most of the server's time waiting on the disk.
// Instead, the writes that requests start during one turn of the event loop run together in one
// transaction, each inside its own savepoint (a job that throws undoes only its own writes), and
// one COMMIT, one fsync, makes them all durable before any of them is answered. Jobs still run one
// after another on the single connection, so each sees the ones before it, as separate
// transactions would.
//
// Jobs that need no durability (leases: losing one in a crash just serves the item again) commit
// apart, first, with synchronous=NORMAL: no fsync, and their replies need not wait for one. The
// next durable commit fsyncs the whole WAL, their frames included.
import { sql, type Kysely, type Transaction } from "kysely";

export type Work<DB, T> = (trx: Transaction<DB>) => Promise<T>;

interface Job<DB> {
  work: Work<DB, unknown>;
  durable: boolean;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export function groupCommit<DB>(db: Kysely<DB>) {
  let pending: Job<DB>[] = [];

  async function commit(batch: Job<DB>[], durable: boolean) {
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      // Holding the one connection keeps other queries from running between the pragmas.
      await db.connection().execute(async (conn) => {
        if (!durable) await sql`pragma synchronous = NORMAL`.execute(conn);
        try {
          await conn.transaction().execute(async (trx) => {
            for (const job of batch) {
              await sql`savepoint job`.execute(trx);
              try {
                outcomes.push({ ok: true, value: await job.work(trx) });
                await sql`release job`.execute(trx);
              } catch (error) {
                await sql`rollback to job`.execute(trx);
                await sql`release job`.execute(trx);
                outcomes.push({ ok: false, error });
              }
            }
          });
        } finally {
          if (!durable) await sql`pragma synchronous = FULL`.execute(conn);
        }
      });
    } catch (error) {
      // The COMMIT itself failed (disk full, I/O error): nothing in the batch was stored.
      for (const job of batch) job.reject(error);
      return;
    }
    batch.forEach((job, i) => {
      const o = outcomes[i]!;
      if (o.ok) job.resolve(o.value);
      else job.reject(o.error);
    });
  }

  async function flush() {
    const batch = pending;
    pending = [];
    const lenient = batch.filter((j) => !j.durable), durable = batch.filter((j) => j.durable);
    if (lenient.length) await commit(lenient, false);
    // The next turn, so that the replies to the leases go out before the fsync holds up the thread.
    if (durable.length) setImmediate(() => void commit(durable, true));
  }

  // Resolves once the job's writes are committed (and, when durable, fsynced).
  return function write<T>(work: Work<DB, T>, opts: { durable: boolean }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (pending.length === 0) setImmediate(() => void flush());
      pending.push({ work, durable: opts.durable, resolve: resolve as (v: unknown) => void, reject });
    });
  };
}
