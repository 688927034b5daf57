// People and access: API tokens are 256 random bits shown once and stored only as a SHA-256 hash
// (a slow password hash buys nothing for tokens this long). Every route names the roles it admits.
import { createHash, randomBytes } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Role } from "../shared/schema.ts";
import { isUniqueViolation, type Store } from "./db.ts";
import { HttpError, newId } from "./errors.ts";

export interface User { id: string; name: string; role: Role }

export const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

export async function addUser(store: Store, name: string, role: Role): Promise<{ user: User; token: string }> {
  if (!/^[\w.@-]{1,100}$/.test(name)) throw new Error(`invalid user name ${JSON.stringify(name)}: use letters, digits, . _ - @`);
  const token = "rlhf_" + randomBytes(32).toString("base64url");
  const user: User = { id: newId("u"), name, role };
  try {
    await store.db.insertInto("users").values({ ...user, token_hash: hashToken(token), created_at: Date.now() }).execute();
  } catch (e) {
    if (isUniqueViolation(e)) throw new Error(`user ${name} already exists`);
    throw e;
  }
  return { user, token };
}

export async function userForToken(store: Store, token: string): Promise<User | undefined> {
  const row = await store.db.selectFrom("users").select(["id", "name", "role"])
    .where("token_hash", "=", hashToken(token)).executeTakeFirst();
  return row as User | undefined;
}

declare module "fastify" {
  interface FastifyRequest { user?: User }
}

// A preHandler for routes open to `roles`: 401 without a known token, 403 with the wrong role.
export function requireRole(store: Store, ...roles: Role[]) {
  return async (req: FastifyRequest, _reply: FastifyReply) => {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    if (!m) throw new HttpError(401, "missing bearer token");
    const user = await userForToken(store, m[1]!);
    if (!user) throw new HttpError(401, "unknown token");
    if (!roles.includes(user.role)) throw new HttpError(403, `needs role ${roles.join(" or ")}`);
    req.user = user;
  };
}
