import { randomBytes } from "node:crypto";

// Thrown anywhere in a request; the app's error handler turns it into `{"error": message}`.
export class HttpError extends Error {
  constructor(readonly status: 400 | 401 | 403 | 404 | 409 | 413, message: string) {
    super(message);
  }
}

// Short random ids: unguessable, and the same on SQLite and PostgreSQL (no sequences).
export const newId = (prefix: string) => `${prefix}_${randomBytes(9).toString("base64url")}`;
