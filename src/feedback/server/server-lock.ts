// One server per SQLite file. The server's answers are serialized by its one connection and its
// group commits (group-commit.ts); a second server on the same file would interleave its own
// and meet "database is locked" under load. The lock is an exclusive SQLite lock on a small file
// beside the database: the kernel's record lock, released when the process ends however it ends
// (kill -9 included), so a crash never leaves a stale lock behind. The CLI's other commands
// (import, user revoke...) do not take it and may run beside the server.
import { closeSync, existsSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import { StoreError } from "./errors.ts";

export function holdServerLock(dbFile: string): { release(): void } {
  const path = `${dbFile}.server-lock`;
  if (!existsSync(path)) closeSync(openSync(path, "a", 0o600));
  const lock = new Database(path, { timeout: 0 });
  try {
    lock.pragma("locking_mode = EXCLUSIVE");
    lock.exec("BEGIN EXCLUSIVE");
  } catch (e) {
    lock.close();
    if (String((e as { code?: string }).code).startsWith("SQLITE_BUSY")) {
      throw new StoreError(`${dbFile} is in use by another feedback server (it holds ${path}); run one server per SQLite file, or several on PostgreSQL (--database-url)`);
    }
    throw new StoreError(`${path}: cannot take the server lock (${(e as Error).message})`);
  }
  return { release: () => { lock.exec("ROLLBACK"); lock.close(); } };
}
