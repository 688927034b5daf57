import { randomBytes } from "node:crypto";
import { InputError } from "../../io/errors.ts";

/** The database cannot be used (missing, locked by another server, corrupt, read-only): one line naming it. */
export class StoreError extends InputError {}

export type HttpStatus = 400 | 401 | 403 | 404 | 409 | 413 | 429 | 503 | 507;

// Thrown anywhere in a request; the app's error handler turns it into `{"error": message}`.
export class HttpError extends Error {
  constructor(readonly status: HttpStatus, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

// Short random ids: unguessable, and the same on SQLite and PostgreSQL (no sequences).
export const newId = (prefix: string) => `${prefix}_${randomBytes(9).toString("base64url")}`;
