// People and their tokens: `rlhf feedback user add | list | rotate | revoke | disable | enable`.
// A token is 256 random bits shown once and stored only as a SHA-256 hash (a slow password hash
// buys nothing for tokens this long). Users are never deleted, since their answers refer to them:
// a user who should no longer sign in is disabled, and a lost or leaked token is revoked or
// rotated (a new one replaces it, under the same name and with the same answers).
import { createHash, randomBytes } from "node:crypto";
import type { Role } from "../shared/schema.ts";
import { isUniqueViolation, type Store, type Tables } from "./db.ts";
import { newId } from "./errors.ts";
import { InputError } from "../../io/errors.ts";

export interface User { id: string; name: string; role: Role }

export const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

const DAY_MS = 24 * 3600_000;

/** A token's state as the server sees it; `active` is the only one that signs in. */
export type TokenStatus = "active" | "revoked" | "expired" | "disabled";

export function tokenStatus(row: Pick<Tables["users"], "disabled_at" | "token_revoked_at" | "token_expires_at">, now = Date.now()): TokenStatus {
  if (row.disabled_at !== null) return "disabled";
  if (row.token_revoked_at !== null) return "revoked";
  if (row.token_expires_at !== null && row.token_expires_at <= now) return "expired";
  return "active";
}

/** Bad input to a user command: the CLI prints its message as one line. */
export class UserError extends InputError {}

const newToken = () => "rlhf_" + randomBytes(32).toString("base64url");
const expiry = (expiresDays: number | undefined) => (expiresDays === undefined ? null : Date.now() + expiresDays * DAY_MS);

/** What a user name may hold; names of labelers imported from other tools are checked against it too. */
export const USER_NAME = /^[\w.@-]{1,100}$/;

export async function addUser(store: Store, name: string, role: Role, expiresDays?: number): Promise<{ user: User; token: string }> {
  if (!USER_NAME.test(name)) throw new UserError(`invalid user name ${JSON.stringify(name)}: use letters, digits, . _ - @`);
  const token = newToken();
  const user: User = { id: newId("u"), name, role };
  try {
    await store.db.insertInto("users").values({ ...user, token_hash: hashToken(token), created_at: Date.now(), token_expires_at: expiry(expiresDays) }).execute();
  } catch (e) {
    if (isUniqueViolation(e)) throw new UserError(`user ${name} already exists (rlhf feedback user rotate ${name} issues a new token)`);
    throw e;
  }
  return { user, token };
}

export interface UserRow extends User {
  status: TokenStatus; created_at: number; token_expires_at: number | null; last_used_at: number | null; answers: number;
}

export async function listUsers(store: Store): Promise<UserRow[]> {
  const rows = await store.db.selectFrom("users as u")
    .select(["u.id", "u.name", "u.role", "u.created_at", "u.token_expires_at", "u.token_revoked_at", "u.disabled_at", "u.last_used_at"])
    .select((eb) => eb.selectFrom("answers as a").select((e) => e.fn.countAll<number>().as("n")).whereRef("a.labeler_id", "=", "u.id").as("answers"))
    .orderBy("u.created_at").execute();
  return rows.map((r) => ({
    id: r.id, name: r.name, role: r.role as Role, status: tokenStatus(r), created_at: r.created_at,
    token_expires_at: r.token_expires_at, last_used_at: r.last_used_at, answers: Number(r.answers ?? 0),
  }));
}

async function update(store: Store, name: string, set: Partial<Tables["users"]>): Promise<void> {
  const r = await store.db.updateTable("users").set(set).where("name", "=", name).executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) throw new UserError(`no user named ${JSON.stringify(name)} (rlhf feedback user list shows them)`);
}

/** The token stops working at once; `rotate` issues a new one. */
export const revokeToken = (store: Store, name: string) => update(store, name, { token_revoked_at: Date.now() });

/** A new token replaces the old one (which stops working at once); the user keeps their answers. */
export async function rotateToken(store: Store, name: string, expiresDays?: number): Promise<string> {
  const token = newToken();
  await update(store, name, { token_hash: hashToken(token), token_revoked_at: null, token_expires_at: expiry(expiresDays), last_used_at: null });
  return token;
}

/** A disabled user cannot sign in with any token until enabled again; their answers stay. */
export const setDisabled = (store: Store, name: string, disabled: boolean) => update(store, name, { disabled_at: disabled ? Date.now() : null });
