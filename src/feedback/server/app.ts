// The feedback HTTP server: routes, authentication, request validation and the built web UI.
// Each route is: check role, parse the body with the shared schema, call one store function.
import { existsSync, readFileSync, statSync } from "node:fs";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyInstance } from "fastify";
import { z } from "zod";
import {
  AnswerRequest, CreateProjectRequest, ExportQuery, ImportItemsRequest,
  type ImportItemsResponse, type Me, type ProjectDetail, type ProjectSummary,
} from "../shared/schema.ts";
import { requireRole } from "./auth.ts";
import type { Store } from "./db.ts";
import { HttpError } from "./errors.ts";
import { exportLines } from "./export.ts";
import { nextItem, submitAnswer, DEFAULT_LEASE_MS } from "./labeling.ts";
import { createProject, getProject, importItems, listProjects, progressOf, projectJson } from "./projects.ts";
import { projectStats } from "./stats.ts";

export interface AppOptions {
  store: Store;
  leaseMs?: number;
  staticDir?: string; // the built web UI; served at / when the folder exists
  logger?: boolean;
}

export const DEFAULT_STATIC_DIR = fileURLToPath(new URL("../../../dist/feedback-client/", import.meta.url));
const SMALL_BODY = 64 * 1024; // answers and projects
const IMPORT_BODY = 64 * 1024 * 1024; // item imports

function parse<T extends z.ZodType>(schema: T, data: unknown): z.output<T> {
  const r = schema.safeParse(data);
  if (!r.success) throw new HttpError(400, z.prettifyError(r.error));
  return r.data;
}

type P = { Params: { project: string } };

export function buildApp(opts: AppOptions): FastifyInstance {
  const { store } = opts;
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: SMALL_BODY });
  const anyone = { preHandler: requireRole(store, "admin", "labeler") };
  const admin = { preHandler: requireRole(store, "admin") };
  const labeler = { preHandler: requireRole(store, "labeler") };

  app.addHook("onSend", async (_req, reply) => {
    reply.header("x-content-type-options", "nosniff");
  });
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof HttpError) return reply.code(err.status).send({ error: err.message });
    const status = (err as { statusCode?: number }).statusCode;
    // Fastify's own client errors: malformed JSON (400), body too large (413), unsupported media type (415).
    if (status && status >= 400 && status < 500) return reply.code(status).send({ error: err instanceof Error ? err.message : String(err) });
    req.log.error(err);
    return reply.code(500).send({ error: "internal server error" });
  });

  app.get("/healthz", async () => ({ ok: true }));

  app.get("/api/me", anyone, async (req): Promise<Me> => req.user!);

  app.get("/api/projects", anyone, async (req): Promise<ProjectSummary[]> => {
    const out: ProjectSummary[] = [];
    for (const p of await listProjects(store)) {
      const { guidelines: _, ...summary } = projectJson(p);
      out.push({ ...summary, progress: await progressOf(store.db, p, req.user!) });
    }
    return out;
  });

  app.post("/api/projects", admin, async (req, reply) => {
    const project = await createProject(store, parse(CreateProjectRequest, req.body));
    return reply.code(201).send(project);
  });

  app.get<P>("/api/projects/:project", anyone, async (req): Promise<ProjectDetail> => {
    const p = await getProject(store.db, req.params.project);
    return { ...projectJson(p), progress: await progressOf(store.db, p, req.user!) };
  });

  app.post<P>("/api/projects/:project/items", { ...admin, bodyLimit: IMPORT_BODY }, async (req, reply) => {
    const p = await getProject(store.db, req.params.project);
    const ids = await importItems(store, p, parse(ImportItemsRequest, req.body));
    return reply.code(201).send({ imported: ids.length, item_ids: ids } satisfies ImportItemsResponse);
  });

  app.get<P>("/api/projects/:project/next", labeler, async (req, reply) => {
    const item = await nextItem(store, req.user!, req.params.project, leaseMs);
    return item ? item : reply.code(204).send();
  });

  app.post<{ Params: { item: string } }>("/api/items/:item/answers", labeler, async (req, reply) => {
    const answer = await submitAnswer(store, req.user!, req.params.item, parse(AnswerRequest, req.body));
    return reply.code(answer.replayed ? 200 : 201).send(answer);
  });

  app.get<P>("/api/projects/:project/stats", admin, async (req) => projectStats(store, await getProject(store.db, req.params.project)));

  app.get<P>("/api/projects/:project/export", admin, async (req, reply) => {
    const q = parse(ExportQuery, req.query);
    const lines = await exportLines(store, await getProject(store.db, req.params.project), q.format, q.aggregate);
    return reply.type("application/x-ndjson; charset=utf-8").send(lines.map((l) => l + "\n").join(""));
  });

  serveStatic(app, opts.staticDir ?? DEFAULT_STATIC_DIR);
  return app;
}

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
  ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
  ".woff2": "font/woff2", ".map": "application/json",
};
// Model outputs are untrusted: the UI renders them as text, and this policy forbids inline and foreign scripts anyway.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

// A few lines instead of a plugin: GET a file under `root`, or index.html for client-side routes.
function serveStatic(app: FastifyInstance, root: string) {
  app.setNotFoundHandler((req, reply) => {
    const path = decodeURIComponent(req.url.split("?")[0]!);
    if (req.method !== "GET" || path.startsWith("/api/") || !existsSync(root)) return reply.code(404).send({ error: "not found" });
    const base = resolve(root);
    let file = resolve(join(base, path));
    if (file !== base && !file.startsWith(base + sep)) return reply.code(404).send({ error: "not found" });
    if (!existsSync(file) || statSync(file).isDirectory()) {
      if (extname(path)) return reply.code(404).send({ error: "not found" });
      file = join(base, "index.html");
    }
    return reply.header("content-security-policy", CSP).type(MIME[extname(file)] ?? "application/octet-stream").send(readFileSync(file));
  });
}
