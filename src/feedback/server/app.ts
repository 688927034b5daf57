// The feedback HTTP server: routes, request checks, headers, logs and the built web UI.
// Each route is declared with route(): who may call it, how large a body it takes and the shared
// schemas of its parameters, query and body; the handler calls one store function.
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyInstance } from "fastify";
import { sql } from "kysely";
import {
  AnswerRequest, CreateProjectRequest, UpdateProjectRequest, ExportQuery, ImportItemsRequest, ItemParams, ProjectParams, ToolImportQuery, ToolImportRequest,
  type ImportItemsResponse, type ToolImportResponse, type Me, type ProjectDetail, type ProjectSummary,
} from "../shared/schema.ts";
import { authenticate, AuthThrottle } from "./auth.ts";
import type { Store } from "./db.ts";
import { HttpError } from "./errors.ts";
import { exportLines } from "./export.ts";
import { InteropError } from "./interop/foreign.ts";
import { exportToTool, importToolRecords, isTool, type Tool } from "./interop/tools.ts";

import { storageFault } from "./faults.ts";
import { nextItem, submitAnswer, DEFAULT_LEASE_MS } from "./labeling.ts";
import { createProject, getProject, importItems, listProjects, progressOf, projectJson, updateProject } from "./projects.ts";
import { declaredBodyBytes, guardRoutes, route, routeConfig } from "./route.ts";
import { projectStats } from "./stats.ts";
import { securityHeaders, serveStatic } from "./static.ts";

// A file in another tool's shape that does not fit is the client's mistake: 400 with its one line.
async function asBadRequest<T>(fn: () => Promise<T>): Promise<T> {
  try { return await fn(); } catch (e) {
    if (e instanceof InteropError) throw new HttpError(400, e.message);
    throw e;
  }
}

export { CSP } from "./static.ts";

export interface AppOptions {
  store: Store;
  leaseMs?: number;
  staticDir?: string; // the built web UI; served at / when the folder exists
  /** Where the JSON log lines go (default stderr): every 5xx, with its cause and request id. */
  log?: { write(line: string): void };
  throttle?: AuthThrottle;
  tls?: { key: Buffer; cert: Buffer };
  limits?: Partial<ConnectionLimits>;
}

export const DEFAULT_STATIC_DIR = fileURLToPath(new URL("../../../dist/feedback-client/", import.meta.url));
const SMALL_BODY = 64 * 1024; // answers and projects
const IMPORT_BODY = 64 * 1024 * 1024; // item imports

// Slow or idle clients hold a connection for at most these, and at most `maxConnections` are
// open at once (more are closed on arrival): a thousand slow-loris connections cost little.
export interface ConnectionLimits {
  maxConnections: number;
  headersTimeout: number; // ms to send the request's headers
  requestTimeout: number; // ms for the whole request: a 64 MiB import over a slow link fits
  connectionTimeout: number; // ms a socket may sit idle
  keepAliveTimeout: number; // ms between requests on a kept-alive connection
}
export const DEFAULT_LIMITS: ConnectionLimits = {
  maxConnections: 1000, headersTimeout: 10_000, requestTimeout: 120_000, connectionTimeout: 60_000, keepAliveTimeout: 5_000,
};

// Node 20's own headersTimeout closes a slow client only when it is the only one pending (probed:
// two or more connections that never finish their headers are all kept), so every socket also
// gets its own timer: the headers of each request must arrive within `ms` of connecting or of
// the previous answer. Bodies are then bounded by requestTimeout and the route's size limit.
export function closeSlowHeaders(server: Server, event: "connection" | "secureConnection", ms: number): void {
  const timers = new WeakMap<Socket, NodeJS.Timeout>();
  const arm = (socket: Socket) => {
    clearTimeout(timers.get(socket));
    timers.set(socket, setTimeout(() => socket.destroy(), ms).unref());
  };
  server.on(event, arm);
  server.on("request", (req, res) => {
    clearTimeout(timers.get(req.socket));
    res.once("finish", () => { if (!req.socket.destroyed) arm(req.socket); });
  });
}

export function buildApp(opts: AppOptions): FastifyInstance {
  const { store } = opts;
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const throttle = opts.throttle ?? new AuthThrottle();
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  // Node checks the two request timeouts every connectionsCheckingInterval (30 s by default).
  const server = { headersTimeout: limits.headersTimeout, connectionsCheckingInterval: Math.min(1000, limits.headersTimeout) };
  const app = Fastify({
    connectionTimeout: limits.connectionTimeout, keepAliveTimeout: limits.keepAliveTimeout, requestTimeout: limits.requestTimeout,
    ...(opts.tls ? { https: { ...opts.tls, ...server } } : { http: server }),
    bodyLimit: SMALL_BODY,
    genReqId: () => randomBytes(6).toString("base64url"),
    logger: { level: "warn", stream: opts.log ?? process.stderr },
  });
  app.server.maxConnections = limits.maxConnections;
  closeSlowHeaders(app.server, opts.tls ? "secureConnection" : "connection", limits.headersTimeout);
  guardRoutes(app);

  // Before the body is read: the route's access (401/403/429), then its size limit (413).
  // Requests no route matches get GET/HEAD for static files and 404 for anything else.
  app.addHook("onRequest", async (req, reply) => {
    reply.header("x-request-id", req.id);
    const config = routeConfig(req);
    if (!config) {
      if (req.method !== "GET" && req.method !== "HEAD") throw new HttpError(404, "not found");
      return;
    }
    if (config.access !== "public") await authenticate(store, throttle, req, config.access);
    if (declaredBodyBytes(req) > config.bodyLimit) {
      throw new HttpError(413, config.bodyLimit ? `body too large: this route takes at most ${config.bodyLimit} bytes` : "this route takes no body");
    }
  });
  app.addHook("onSend", async (req, reply) => {
    securityHeaders(reply);
    if (req.url.startsWith("/api/") || req.url.startsWith("/healthz")) reply.header("cache-control", "no-store");
    // Refused before its body was read (401, 413...): close rather than read and discard the rest.
    if (!req.raw.complete) reply.header("connection", "close");
  });
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof HttpError) return reply.code(err.status).headers(err.headers).send({ error: err.message });
    const status = (err as { statusCode?: number }).statusCode;
    // Fastify's own client errors: malformed JSON (400), body too large (413), unsupported media type (415).
    if (status && status >= 400 && status < 500) return reply.code(status).send({ error: err instanceof Error ? err.message : String(err) });
    const fault = storageFault(err);
    req.log.error({ err, status: fault?.status ?? 500, method: req.method, url: req.url, user: req.user?.name }, "request failed");
    if (fault?.retryAfter) reply.header("retry-after", String(fault.retryAfter));
    return reply.code(fault?.status ?? 500).send({ error: fault?.message ?? "internal server error", request_id: req.id });
  });

  const anyone = ["admin", "labeler"] as const;
  route(app, {
    method: "GET", url: "/healthz", access: "public", bodyLimit: 0,
    // Reads a table, so a database that is gone, locked out or unreadable shows here.
    handler: async ({ reply }) => {
      try {
        await sql`select count(*) from users`.execute(store.db);
        return { ok: true, database: store.dialect };
      } catch (e) {
        return reply.code(503).send({ ok: false, database: store.dialect, error: storageFault(e)?.message ?? "the database does not answer" });
      }
    },
  });

  route(app, { method: "GET", url: "/api/me", access: anyone, bodyLimit: 0, handler: async ({ user }): Promise<Me> => user });

  route(app, {
    method: "GET", url: "/api/projects", access: anyone, bodyLimit: 0,
    handler: async ({ user }): Promise<ProjectSummary[]> => {
      const out: ProjectSummary[] = [];
      for (const p of await listProjects(store)) {
        const { guidelines: _, ...summary } = projectJson(p);
        out.push({ ...summary, progress: await progressOf(store.db, p, user) });
      }
      return out;
    },
  });

  route(app, {
    method: "POST", url: "/api/projects", access: ["admin"], bodyLimit: SMALL_BODY, body: CreateProjectRequest,
    handler: async ({ body, reply }) => reply.code(201).send(await createProject(store, body)),
  });

  route(app, {
    method: "GET", url: "/api/projects/:project", access: anyone, bodyLimit: 0, params: ProjectParams,
    handler: async ({ params, user }): Promise<ProjectDetail> => {
      const p = await getProject(store.db, params.project);
      return { ...projectJson(p), progress: await progressOf(store.db, p, user) };
    },
  });

  route(app, {
    method: "PATCH", url: "/api/projects/:project", access: ["admin"], bodyLimit: SMALL_BODY, params: ProjectParams, body: UpdateProjectRequest,
    handler: async ({ params, body }) => updateProject(store, params.project, body),
  });

  route(app, {
    method: "POST", url: "/api/projects/:project/items", access: ["admin"], bodyLimit: IMPORT_BODY, params: ProjectParams, body: ImportItemsRequest,
    handler: async ({ params, body, reply }) => {
      const ids = await importItems(store, await getProject(store.db, params.project), body);
      return reply.code(201).send({ imported: ids.length, item_ids: ids } satisfies ImportItemsResponse);
    },
  });

  route(app, {
    method: "POST", url: "/api/projects/:project/import", access: ["admin"], bodyLimit: IMPORT_BODY, params: ProjectParams,
    query: ToolImportQuery, body: ToolImportRequest,
    handler: async ({ params, query, body, reply }) => {
      const n = await asBadRequest(async () => importToolRecords(store, await getProject(store.db, params.project), query.from, body));
      return reply.code(201).send({ imported: n.items, answers: n.answers } satisfies ToolImportResponse);
    },
  });

  route(app, {
    method: "GET", url: "/api/projects/:project/next", access: ["labeler"], bodyLimit: 0, params: ProjectParams,
    handler: async ({ params, user, reply }) => (await nextItem(store, user, params.project, leaseMs)) ?? reply.code(204).send(),
  });

  route(app, {
    method: "POST", url: "/api/items/:item/answers", access: ["labeler"], bodyLimit: SMALL_BODY, params: ItemParams, body: AnswerRequest,
    handler: async ({ params, body, user, reply }) => {
      const answer = await submitAnswer(store, user, params.item, body);
      return reply.code(answer.replayed ? 200 : 201).send(answer);
    },
  });

  route(app, {
    method: "GET", url: "/api/projects/:project/stats", access: ["admin"], bodyLimit: 0, params: ProjectParams,
    handler: async ({ params }) => projectStats(store, await getProject(store.db, params.project)),
  });

  route(app, {
    method: "GET", url: "/api/projects/:project/export", access: ["admin"], bodyLimit: 0, params: ProjectParams, query: ExportQuery,
    handler: async ({ params, query, reply }) => {
      const project = await getProject(store.db, params.project);
      if (isTool(query.format)) {
        const { json } = await asBadRequest(() => exportToTool(store, project, query.format as Tool));
        return reply.type("application/json; charset=utf-8").send(json);
      }
      const lines = await exportLines(store, project, query.format, query.aggregate);
      return reply.type("application/x-ndjson; charset=utf-8").send(lines.map((l) => l + "\n").join(""));
    },
  });

  serveStatic(app, opts.staticDir ?? DEFAULT_STATIC_DIR);
  return app;
}
