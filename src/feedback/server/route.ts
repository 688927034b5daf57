// The only way to add an API route: `route(app, spec)` with who may call it (`access`) and how
// many bytes of body it may send (`bodyLimit`), both required. The app's onRequest hook checks
// them from the route's config before Fastify reads a byte of the body, and an onRoute hook
// refuses any route registered without them (guardRoutes), so no route can forget either.
// Path parameters, query and body are parsed with the shared schema before the handler runs.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { NoQuery, type Role } from "../shared/schema.ts";
import { HttpError } from "./errors.ts";
import type { User } from "./users.ts";

export type Access = "public" | readonly Role[];

/** What `route()` stores in Fastify's route config, read back by the app's onRequest hook. */
export interface RouteConfig { access: Access; bodyLimit: number }

type Ctx<A extends Access, P, Q, B> = {
  user: A extends "public" ? undefined : User; params: P; query: Q; body: B; req: FastifyRequest; reply: FastifyReply;
};

export interface RouteSpec<A extends Access, P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  method: "GET" | "POST" | "PATCH";
  url: string;
  access: A;
  /** Bytes of request body the route reads at most; 0: the route takes no body. */
  bodyLimit: number;
  params?: P; // required when the url has :parameters
  query?: Q; // default: no query parameters allowed
  body?: B; // required when bodyLimit > 0
  handler(ctx: Ctx<A, z.output<P>, z.output<Q>, z.output<B>>): Promise<unknown>;
}

function parse<T extends z.ZodType>(schema: T, data: unknown, what: string): z.output<T> {
  const r = schema.safeParse(data);
  if (!r.success) throw new HttpError(400, `${what}: ${z.prettifyError(r.error)}`);
  return r.data;
}

const declared = new WeakMap<FastifyInstance, ({ method: string; url: string } & RouteConfig)[]>();

/** Every route declared on `app`, with its access and body limit (for tests that probe them all). */
export const declaredRoutes = (app: FastifyInstance) => declared.get(app) ?? [];

export function route<A extends Access, P extends z.ZodType = z.ZodNever, Q extends z.ZodType = typeof NoQuery, B extends z.ZodType = z.ZodNever>(
  app: FastifyInstance, spec: RouteSpec<A, P, Q, B>,
): void {
  const where = `${spec.method} ${spec.url}`;
  if (spec.url.includes(":") !== (spec.params !== undefined)) throw new Error(`${where}: declare params exactly when the url has :parameters`);
  if ((spec.bodyLimit > 0) !== (spec.body !== undefined)) throw new Error(`${where}: declare a body schema exactly when bodyLimit > 0`);
  const config: RouteConfig = { access: spec.access, bodyLimit: spec.bodyLimit };
  declared.set(app, [...declaredRoutes(app), { method: spec.method, url: spec.url, ...config }]);
  app.route({
    method: spec.method, url: spec.url, config,
    bodyLimit: Math.max(1, spec.bodyLimit), // Fastify needs > 0; onRequest refuses bodies on 0-byte routes
    handler: (req, reply) => spec.handler({
      user: req.user as Ctx<A, unknown, unknown, unknown>["user"],
      params: spec.params ? parse(spec.params, req.params, "path") : (undefined as never),
      query: parse((spec.query ?? NoQuery) as Q, req.query ?? {}, "query"),
      body: spec.body ? parse(spec.body, req.body, "body") : (undefined as never),
      req, reply,
    }),
  });
}

/** Refuses, at start-up, any route added without route(): its access and body limit would be unchecked. */
export function guardRoutes(app: FastifyInstance): void {
  app.addHook("onRoute", (r) => {
    const c = r.config as Partial<RouteConfig> | undefined;
    if (c?.access === undefined || c.bodyLimit === undefined) {
      throw new Error(`route ${String(r.method)} ${r.url} was added without route(): every route declares its access and body limit`);
    }
  });
}

/** The route's declared limits, or undefined for requests no route matched (static files, 404s). */
export const routeConfig = (req: FastifyRequest) => {
  const c = req.routeOptions.config as Partial<RouteConfig> | undefined;
  return c?.access === undefined ? undefined : (c as RouteConfig);
};

/** Bytes the client says it will send (chunked bodies count as unbounded until read). */
export function declaredBodyBytes(req: FastifyRequest): number {
  if (req.headers["transfer-encoding"] !== undefined) return Infinity;
  const n = Number(req.headers["content-length"] ?? 0);
  return Number.isFinite(n) ? n : Infinity;
}
