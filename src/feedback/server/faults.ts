// Database and disk faults as HTTP answers: what a client can do about them (retry later, tell an
// admin) instead of a bare 500. The server logs each one with its cause and request id (app.ts).
import type { HttpStatus } from "./errors.ts";

export interface Fault { status: HttpStatus | 500; message: string; retryAfter?: number }

// SQLite's extended result codes (better-sqlite3's `code`) and PostgreSQL's SQLSTATEs and Node's errnos.
export function storageFault(err: unknown): Fault | undefined {
  const code = String((err as { code?: unknown }).code ?? "");
  if (/^SQLITE_(BUSY|LOCKED)/.test(code) || code === "55P03" || code === "40001" || code === "40P01") {
    return { status: 503, message: "the database is busy; retry in a moment", retryAfter: 1 };
  }
  if (code.startsWith("SQLITE_FULL") || code === "ENOSPC" || code === "53100") return { status: 507, message: "the server's disk is full; tell an admin" };
  if (code.startsWith("SQLITE_READONLY") || code === "EROFS" || code === "25006") return { status: 503, message: "the database is read-only; tell an admin" };
  if (/^SQLITE_(CORRUPT|NOTADB|IOERR|CANTOPEN)/.test(code) || code === "XX001" || code === "XX002") {
    return { status: 500, message: "the database cannot be read or written; tell an admin" };
  }
  // Connection failures and an administrator's shutdown of PostgreSQL.
  if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE)$/.test(code) || /^(08|57P)/.test(code) || code === "53300") {
    return { status: 503, message: "the database is unavailable; retry in a moment", retryAfter: 5 };
  }
  return undefined;
}
