// The dashboard's HTTP server: read-only JSON over the run directories named on the command line
// (addressed by index, so a request can never name a path) and the built page. No accounts: it
// binds 127.0.0.1 unless told otherwise, and serves nothing but those runs' logs and evaluations.
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyInstance } from "fastify";
import { HttpError } from "../../feedback/server/errors.ts";
import { guardRoutes, route } from "../../feedback/server/route.ts";
import { securityHeaders, serveStatic } from "../../feedback/server/static.ts";
import { RunParams, UpdatesQuery, type RunSummary } from "../shared/schema.ts";
import type { RunDir } from "./run-dir.ts";

export const DEFAULT_STATIC_DIR = fileURLToPath(new URL("../../../dist/dashboard-client/", import.meta.url));

export interface DashboardOptions {
  runs: RunDir[];
  staticDir?: string; // the built page; served at / when the folder exists
  log?: { write(line: string): void };
}

export function buildDashboard(opts: DashboardOptions): FastifyInstance {
  const { runs } = opts;
  const app = Fastify({ bodyLimit: 1, logger: { level: "warn", stream: opts.log ?? process.stderr } });
  guardRoutes(app);
  app.addHook("onRequest", async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") throw new HttpError(404, "not found: the dashboard is read-only");
  });
  app.addHook("onSend", async (req, reply) => {
    securityHeaders(reply);
    if (req.url.startsWith("/api/")) reply.header("cache-control", "no-store");
  });
  app.setErrorHandler((err, req, reply) => {
    if (err instanceof HttpError) return reply.code(err.status).send({ error: err.message });
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) return reply.code(status).send({ error: err instanceof Error ? err.message : String(err) });
    req.log.error({ err, url: req.url }, "request failed");
    return reply.code(500).send({ error: "internal server error" });
  });

  route(app, { method: "GET", url: "/healthz", access: "public", bodyLimit: 0, handler: async () => ({ ok: true }) });

  route(app, {
    method: "GET", url: "/api/runs", access: "public", bodyLimit: 0,
    handler: async (): Promise<RunSummary[]> => runs.map((r, index) => ({ index, name: r.name, path: r.path })),
  });

  route(app, {
    method: "GET", url: "/api/runs/:run/updates", access: "public", bodyLimit: 0, params: RunParams, query: UpdatesQuery,
    handler: async ({ params, query }) => {
      const run = runs[params.run];
      if (!run) throw new HttpError(404, `no run ${params.run}: the dashboard follows runs 0 to ${runs.length - 1}`);
      return run.update(query);
    },
  });

  serveStatic(app, opts.staticDir ?? DEFAULT_STATIC_DIR);
  return app;
}
