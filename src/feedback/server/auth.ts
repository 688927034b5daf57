// Who is calling: the bearer token checked against the users table on every request (no cache,
// so a revoked token fails at once, on every server sharing the database), and a throttle on
// failed attempts per client address.
import type { FastifyRequest } from "fastify";
import type { Role } from "../shared/schema.ts";
import type { Store } from "./db.ts";
import { HttpError } from "./errors.ts";
import { hashToken, tokenStatus, type User } from "./users.ts";

declare module "fastify" {
  interface FastifyRequest { user?: User }
}

// last_used_at is written at most this often per user: a write per request would cost a commit each.
const LAST_USED_EVERY_MS = 60_000;

const REFUSED: Record<string, string> = {
  revoked: "this token was revoked; ask an admin for a new one",
  expired: "this token has expired; ask an admin for a new one",
  disabled: "this user is disabled",
};

/** The user behind `token`, or why there is none (an HttpError 401). */
export async function userForToken(store: Store, token: string): Promise<User> {
  const row = await store.db.selectFrom("users")
    .select(["id", "name", "role", "token_expires_at", "token_revoked_at", "disabled_at", "last_used_at"])
    .where("token_hash", "=", hashToken(token)).executeTakeFirst();
  if (!row) throw new HttpError(401, "unknown token");
  const now = Date.now();
  const status = tokenStatus(row, now);
  if (status !== "active") throw new HttpError(401, REFUSED[status]!);
  if (row.last_used_at === null || now - row.last_used_at >= LAST_USED_EVERY_MS) {
    // Bookkeeping, not worth failing (or delaying) the request for.
    store.write((trx) => trx.updateTable("users").set({ last_used_at: now }).where("id", "=", row.id).execute(), { durable: false })
      .catch(() => {});
  }
  return { id: row.id, name: row.name, role: row.role as Role };
}

/**
 * Failed sign-ins per client address, as a token bucket: `burst` failures at once, then one per
 * `refillMs`. An address with no failures left gets 429 before its token is even looked at, so
 * guessing runs at the refill rate. (Clients behind one NAT share an address, and a bucket.)
 */
export class AuthThrottle {
  private buckets = new Map<string, { left: number; at: number }>();
  constructor(private readonly burst = 30, private readonly refillMs = 1000) {}

  private bucket(ip: string, now: number) {
    const b = this.buckets.get(ip) ?? { left: this.burst, at: now };
    b.left = Math.min(this.burst, b.left + (now - b.at) / this.refillMs);
    b.at = now;
    return b;
  }

  /** Seconds until `ip` may try again, or 0. */
  retryAfter(ip: string, now = Date.now()): number {
    const b = this.buckets.get(ip) && this.bucket(ip, now);
    return b && b.left < 1 ? Math.ceil(((1 - b.left) * this.refillMs) / 1000) : 0;
  }

  fail(ip: string, now = Date.now()): void {
    const b = this.bucket(ip, now);
    b.left -= 1;
    this.buckets.set(ip, b);
    // Full buckets carry no information: drop them so the map stays as small as the attack.
    if (this.buckets.size > 10_000) for (const [k] of this.buckets) if (this.bucket(k, now).left >= this.burst) this.buckets.delete(k);
  }
}

/** Sets req.user, or throws 401 (no valid token), 403 (wrong role) or 429 (throttled). */
export async function authenticate(store: Store, throttle: AuthThrottle, req: FastifyRequest, roles: readonly Role[]): Promise<void> {
  const wait = throttle.retryAfter(req.ip);
  if (wait > 0) throw new HttpError(429, `too many failed sign-ins from this address; retry in ${wait} s`, { "retry-after": String(wait) });
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
  if (!m) throw new HttpError(401, "missing bearer token");
  try {
    req.user = await userForToken(store, m[1]!);
  } catch (e) {
    if (e instanceof HttpError) throttle.fail(req.ip); // a wrong guess; a database fault is not one
    throw e;
  }
  if (!roles.includes(req.user.role)) throw new HttpError(403, `needs role ${roles.join(" or ")}`);
}
