// The built web UI of a server (the feedback app, the dashboard): GET a file under a folder, or
// its index.html for client-side routes; nothing outside the folder, nothing under /api/.
import { existsSync, readFileSync, statSync } from "node:fs";
import { extname, join, resolve, sep } from "node:path";
import type { FastifyInstance, FastifyReply } from "fastify";

// Model outputs are untrusted: the UI renders them as text, and this policy forbids inline and
// foreign scripts and styles anyway; forms (markdown guidelines included) may post only here.
export const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The headers every answer carries: the CSP, no MIME sniffing, no referrer. */
export function securityHeaders(reply: FastifyReply): void {
  reply.header("x-content-type-options", "nosniff").header("content-security-policy", CSP).header("referrer-policy", "no-referrer");
}

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
  ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
  ".woff2": "font/woff2", ".map": "application/json",
};

// A few lines instead of a plugin: GET a file under `root`, or index.html for client-side routes.
export function serveStatic(app: FastifyInstance, root: string) {
  app.setNotFoundHandler((req, reply) => {
    let path: string;
    try { path = decodeURIComponent(req.url.split("?")[0]!); } catch { return reply.code(400).send({ error: "malformed url" }); }
    if (req.method !== "GET" || path.startsWith("/api/") || path.includes("\0") || !existsSync(root)) return reply.code(404).send({ error: "not found" });
    const base = resolve(root);
    let file = resolve(join(base, path));
    if (file !== base && !file.startsWith(base + sep)) return reply.code(404).send({ error: "not found" });
    if (!existsSync(file) || statSync(file).isDirectory()) {
      if (extname(path)) return reply.code(404).send({ error: "not found" });
      file = join(base, "index.html");
    }
    // Built assets have content hashes in their names; index.html must be checked every time.
    const cache = extname(file) === ".html" ? "no-cache" : "public, max-age=3600";
    return reply.header("cache-control", cache).type(MIME[extname(file)] ?? "application/octet-stream").send(readFileSync(file));
  });
}
