// The feedback server under hostile input, faults and misuse (issue 17), on SQLite and on
// PostgreSQL alike: every declared route refuses before reading a body, one corpus of hostile
// strings in every field, throttled token guessing, the token lifecycle end to end, faults as
// logged 5xx with request ids, and the CLI's input edges. SQLite-only: the server lock, start-up
// checks of the file. PostgreSQL binaries are required (scripts/setup-test-deps.sh).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { get as httpsGet } from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import { feedbackCli } from "../cli.ts";
import type { NextItem, Project } from "../shared/schema.ts";
import { buildApp, CSP } from "./app.ts";
import { AuthThrottle } from "./auth.ts";
import { openStore, type Store, type StoreOptions } from "./db.ts";
import { StoreError } from "./errors.ts";
import { storageFault } from "./faults.ts";
import { declaredRoutes } from "./route.ts";
import { startPostgres, type Postgres } from "./test-support.ts";
import { addUser, listUsers } from "./users.ts";

/** A request written on a raw socket: the head now, the body only if given. Resolves with the answer's status and headers, and whether the server then closed the connection. */
function rawRequest(base: string, head: string, body?: string): Promise<{ status: number; headers: string; closed: boolean }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname);
    let text = "";
    let answered: { status: number; headers: string } | undefined;
    const timer = setTimeout(() => {
      sock.destroy();
      if (answered) resolve({ ...answered, closed: false });
      else reject(new Error(`no answer in 3 s to ${head.split("\r\n")[0]} (waiting for the body?)`));
    }, 3000);
    sock.on("data", (d) => {
      text += d;
      if (!answered && text.includes("\r\n\r\n")) answered = { status: Number(text.split(" ")[1]), headers: text.slice(0, text.indexOf("\r\n\r\n")).toLowerCase() };
    });
    sock.on("close", () => {
      clearTimeout(timer);
      if (answered) resolve({ ...answered, closed: true });
      else reject(new Error(`connection closed without an answer to ${head.split("\r\n")[0]}`));
    });
    sock.on("error", () => {});
    sock.write(head + "\r\n\r\n" + (body ?? ""));
  });
}

// Strings no field may hold, and strings every field must keep verbatim.
const HOSTILE = { nul: "a\u0000b", loneHigh: "a\ud800b", loneLow: "\udc00z" } as const;
const VERBATIM = "🙂 e\u0301 \u2028 שלום \u200b '; DROP TABLE items; -- <b>x</b> \\ \"";

async function cli(...argv: string[]): Promise<{ code: number; err: string; out: string }> {
  const out: string[] = [], err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    return { code: await feedbackCli(argv), err: err.join("\n"), out: out.join("\n") };
  } finally {
    [console.log, console.error] = [log, error];
  }
}

for (const dialect of ["sqlite", "postgres"] as const) {
  describe(`feedback server, hostile input on ${dialect}`, () => {
    let dir: string, pg: Postgres | undefined, where: StoreOptions, dbArgs: string[];
    let store: Store, app: FastifyInstance, base: string, project: Project;
    const logs: string[] = [];
    const tok: Record<string, string> = {};

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), `feedback-hostile-${dialect}-`));
      if (dialect === "postgres") pg = await startPostgres();
      where = pg ? { databaseUrl: pg.url } : { db: join(dir, "h.sqlite") };
      dbArgs = pg ? ["--database-url", pg.url] : ["--db", where.db!];
      store = await openStore({ ...where, server: true });
      app = buildApp({ store, staticDir: join(dir, "no-ui"), log: { write: (l) => void logs.push(l) }, throttle: new AuthThrottle(10_000, 1) });
      base = await app.listen({ host: "127.0.0.1", port: 0 });
      for (const [name, role] of [["root", "admin"], ["ann", "labeler"], ["bob", "labeler"]] as const) tok[name] = (await addUser(store, name, role)).token;
      project = (await (await fetch(`${base}/api/projects`, {
        method: "POST", headers: { authorization: `Bearer ${tok.root}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "hostile", task: "pairwise", overlap: 2 }),
      })).json()) as Project;
    });
    after(async () => {
      await app?.close();
      await store?.close();
      pg?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    const api = async (who: string | null, method: string, path: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method, headers: { ...(who ? { authorization: `Bearer ${tok[who] ?? who}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, headers: res.headers, json: text && res.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(text) : undefined, text };
    };
    const fiveHundreds = () => logs.filter((l) => JSON.parse(l).level >= 50);

    test("every declared route checks the token, the role and the size before reading a byte of the body", async () => {
      const routes = declaredRoutes(app);
      assert.ok(routes.length >= 9, `only ${routes.length} routes declared`);
      const fill = (url: string) => url.replace(":project", project.id).replace(":item", "i_none");
      for (const r of routes) {
        const line = `${r.method} ${fill(r.url)} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json`;
        const huge = `${line}\r\ncontent-length: 60000000`;
        if (r.access !== "public") {
          for (const auth of ["", "\r\nauthorization: Bearer rlhf_wrong"]) {
            const res = await rawRequest(base, huge + auth);
            assert.equal(res.status, 401, `${r.method} ${r.url}${auth ? " with a wrong token" : ""}`);
            assert.ok(res.closed, `${r.method} ${r.url}: the connection is closed instead of reading 60 MB`);
          }
          const outsider = (["admin", "labeler"] as const).find((role) => !r.access.includes(role));
          if (outsider) {
            const res = await rawRequest(base, `${huge}\r\nauthorization: Bearer ${tok[outsider === "admin" ? "root" : "ann"]}`);
            assert.equal(res.status, 403, `${r.method} ${r.url} as ${outsider}`);
          }
        }
        const insider = r.access === "public" ? "" : `\r\nauthorization: Bearer ${tok[r.access.includes("admin") ? "root" : "ann"]}`;
        const tooBig = await rawRequest(base, `${line}\r\ncontent-length: ${r.bodyLimit + 10}${insider}`);
        assert.equal(tooBig.status, 413, `${r.method} ${r.url}: ${r.bodyLimit + 10} bytes`);
        assert.ok(tooBig.closed);
      }
      const unknown = await rawRequest(base, "POST /api/anything HTTP/1.1\r\nhost: x\r\ncontent-length: 60000000");
      assert.equal(unknown.status, 404);
      assert.ok(unknown.closed);
      assert.throws(() => {
        const extra = buildApp({ store, staticDir: join(dir, "no-ui") });
        extra.get("/api/forgot", async () => "no access declared");
      }, /added without route\(\)/);
    });

    test("one corpus of hostile strings is refused with 400 in every field, path and query; verbatim text round-trips", async () => {
      const [item] = (await api("root", "POST", `/api/projects/${project.id}/items`, [{ id: "ok-1", prompt: VERBATIM, responses: [VERBATIM, "b"] }])).json.item_ids;
      const served = (await api("ann", "GET", `/api/projects/${project.id}/next`)).json as NextItem;
      assert.equal(served.prompt, VERBATIM);
      assert.ok(served.responses.some((r) => r.text === VERBATIM));
      const ids = served.responses.map((r) => r.id);
      for (const [kind, bad] of Object.entries(HOSTILE)) {
        const cases: [string, string, string, unknown][] = [
          ["root", "POST", "/api/projects", { name: bad, task: "pairwise" }],
          ["root", "POST", "/api/projects", { name: "g", task: "pairwise", guidelines: bad }],
          ...[
            { id: bad, prompt: "p", responses: ["a", "b"] }, { prompt: bad, responses: ["a", "b"] },
            { prompt: [{ role: bad, content: "c" }], responses: ["a", "b"] }, { prompt: [{ role: "user", content: bad }], responses: ["a", "b"] },
            { prompt: "p", responses: [bad, "b"] }, { prompt: "p", responses: ["a", "b"], policy: bad },
            { prompt: "p", responses: ["a", "b"], suggestion: { ranking: [0, 1], judge: bad } },
            { prompt: "p", responses: ["a", "b"], suggestion: { ranking: [0, 1], rationale: bad } },
          ].map((it): [string, string, string, unknown] => ["root", "POST", `/api/projects/${project.id}/items`, [it]]),
          ["ann", "POST", `/api/items/${item}/answers`, { request_id: bad, ranking: ids }],
          ["ann", "POST", `/api/items/${item}/answers`, { request_id: "r", ranking: ids, rationale: bad }],
          ["ann", "POST", `/api/items/${item}/answers`, { request_id: "r", ranking: [ids[0], bad] }],
          ["ann", "POST", `/api/items/${item}/answers`, { request_id: "r", ratings: { [bad]: 3, [ids[1]!]: 4 } }],
        ];
        for (const [who, method, path, body] of cases) {
          const r = await api(who, method, path, body);
          assert.equal(r.status, 400, `${kind} in ${path} ${JSON.stringify(body)}: ${r.text}`);
        }
      }
      // Path parameters and query values, percent-encoded as a browser would send them.
      for (const path of [
        `/api/projects/a%00b`, `/api/projects/a%00b/next`, `/api/projects/%F0%9F%99%82/stats`, `/api/items/a%00b/answers`,
        `/api/projects/${project.id}/export?format=%00`, `/api/projects/${project.id}/export?aggregate=all&x=1`, `/api/projects/${"x".repeat(200)}`,
      ]) {
        const who = path.includes("answers") || path.endsWith("next") ? "ann" : "root";
        const r = await api(who, path.includes("answers") ? "POST" : "GET", path, path.includes("answers") ? { request_id: "r", skip: true } : undefined);
        assert.ok([400, 404, 414].includes(r.status), `${path}: ${r.status} ${r.text}`);
      }
      const ok = await api("ann", "POST", `/api/items/${item}/answers`, { request_id: VERBATIM, ranking: ids, rationale: VERBATIM });
      assert.equal(ok.status, 201, ok.text);
      assert.equal(ok.json.rationale, VERBATIM);
      assert.equal((await api("ann", "POST", `/api/items/${item}/answers`, { request_id: VERBATIM, ranking: ids, rationale: VERBATIM })).json.request_id, VERBATIM);
      assert.deepEqual(fiveHundreds(), [], "no hostile string reached the database as a 500");
    });

    test("answers carry no-store, a CSP without inline styles that keeps forms here, and a request id", async () => {
      const r = await api("root", "GET", "/api/projects");
      assert.equal(r.headers.get("cache-control"), "no-store");
      assert.equal(r.headers.get("content-security-policy"), CSP);
      assert.match(CSP, /form-action 'self'/);
      assert.doesNotMatch(CSP, /unsafe-inline/);
      assert.match(r.headers.get("x-request-id") ?? "", /^[\w-]{8}$/);
      assert.equal((await api("root", "GET", `/api/projects/${project.id}/export`)).headers.get("cache-control"), "no-store");
    });

    test("failed sign-ins are throttled per address: 429 with Retry-After, even for a valid token, until the bucket refills", async () => {
      const strict = buildApp({ store, staticDir: join(dir, "no-ui"), throttle: new AuthThrottle(3, 300) });
      const call = (token: string) => strict.inject({ method: "GET", url: "/api/me", headers: { authorization: `Bearer ${token}` } });
      for (let i = 0; i < 3; i++) assert.equal((await call("rlhf_guess" + i)).statusCode, 401);
      const limited = await call("rlhf_guess");
      assert.equal(limited.statusCode, 429);
      assert.equal(limited.headers["retry-after"], "1");
      assert.equal((await call(tok.ann!)).statusCode, 429, "a valid token is not even looked at while the address is throttled");
      await new Promise((r) => setTimeout(r, 350));
      assert.equal((await call(tok.ann!)).statusCode, 200);
      assert.equal((await strict.inject({ method: "GET", url: "/api/me" })).statusCode, 401, "no token at all is not a guess");
      await strict.close();
    });

    test("tokens: revoke, rotate, disable and expiry through the CLI take effect at once on the running server; answers stay", async () => {
      const u = (name: string) => cli("user", ...name.split(" "), ...dbArgs);
      const add = await u("add cy --role labeler");
      assert.equal(add.code, 0, add.err);
      tok.cy = add.out.trim();
      const item = (await api("cy", "GET", `/api/projects/${project.id}/next`)).json as NextItem;
      assert.equal((await api("cy", "POST", `/api/items/${item.id}/answers`, { request_id: "cy-1", skip: true })).status, 201);

      assert.equal((await u("revoke cy")).code, 0);
      const revoked = await api("cy", "GET", "/api/me");
      assert.equal(revoked.status, 401);
      assert.match(revoked.json.error, /revoked/);
      const rotated = await u("rotate cy");
      assert.equal(rotated.code, 0, rotated.err);
      const old = tok.cy;
      tok.cy = rotated.out.trim();
      assert.equal((await api(old, "GET", "/api/me")).status, 401);
      assert.equal((await api("cy", "GET", "/api/me")).json.name, "cy");

      assert.equal((await u("disable cy")).code, 0);
      assert.match((await api("cy", "GET", "/api/me")).json.error, /disabled/);
      assert.equal((await u("rotate cy")).code, 0, "rotating does not enable");
      assert.equal((await api("cy", "GET", "/api/me")).status, 401);
      assert.equal((await u("enable cy")).code, 0);
      tok.cy = (await u("rotate cy --expires-days 1")).out.trim();
      assert.equal((await api("cy", "GET", "/api/me")).status, 200);
      await store.db.updateTable("users").set({ token_expires_at: Date.now() - 1 }).where("name", "=", "cy").execute();
      assert.match((await api("cy", "GET", "/api/me")).json.error, /expired/);

      const listed = await u("list --json");
      const cy = listed.out.split("\n").map((l) => JSON.parse(l)).find((x: { name: string }) => x.name === "cy");
      assert.equal(cy.status, "expired");
      assert.equal(cy.answers, 1, "cy's answer is kept through revoke, rotate and disable");
      assert.ok((await listUsers(store)).find((x) => x.name === "ann")!.last_used_at! > Date.now() - 60_000, "last use recorded");
      assert.match((await u("revoke nobody")).err, /no user named "nobody"/);
      assert.equal((await u("add cy --role labeler")).code, 1, "the name stays taken");
    });

    test("a database fault is a logged 5xx with the request id; /healthz reports it", async () => {
      assert.deepEqual((await api(null, "GET", "/healthz")).json, { ok: true, database: dialect });
      const other = await openStore(where);
      await sql`alter table users rename to users_gone`.execute(other.db);
      try {
        const health = await api(null, "GET", "/healthz");
        assert.equal(health.status, 503);
        assert.equal(health.json.ok, false);
        const failed = await api("root", "GET", "/api/me");
        assert.equal(failed.status, 500);
        assert.equal(failed.json.request_id, failed.headers.get("x-request-id"));
        const logged = fiveHundreds().map((l) => JSON.parse(l)).find((l) => l.reqId === failed.json.request_id);
        assert.ok(logged, `no log line for request ${failed.json.request_id}:\n${logs.join("")}`);
        assert.match(logged.err.message, /users/, "the log names the cause");
        assert.equal(logged.url, "/api/me");
      } finally {
        await sql`alter table users_gone rename to users`.execute(other.db);
        await other.close();
      }
      assert.equal((await api(null, "GET", "/healthz")).status, 200);
      assert.deepEqual(storageFault({ code: dialect === "sqlite" ? "SQLITE_FULL" : "53100" })?.status, 507);
      assert.deepEqual(storageFault({ code: dialect === "sqlite" ? "SQLITE_BUSY" : "55P03" })?.status, 503);
    });

    test("feedback import: a BOM is accepted; duplicate ids, line numbers and directories are named", async () => {
      const file = join(dir, "items.jsonl");
      const line = (id: string) => JSON.stringify({ id, prompt: "p", responses: ["a", "b"] });
      writeFileSync(file, "\ufeff" + line("bom-1") + "\r\n\n" + line("bom-2") + "\n");
      const ok = await cli("import", "--project", "hostile", file, ...dbArgs);
      assert.equal(ok.code, 0, ok.err);
      writeFileSync(file, [line("d-1"), "", "", line("d-2"), line("d-1")].join("\n"));
      assert.equal((await cli("import", "--project", "hostile", file, ...dbArgs)).err, `rlhf feedback: ${file}:5: item id "d-1" was already given at ${file}:1`);
      writeFileSync(file, ["", line("bom-2")].join("\n"));
      assert.equal((await cli("import", "--project", "hostile", file, ...dbArgs)).err, `rlhf feedback: ${file}:2: item id "bom-2" is already in project "hostile"`);
      writeFileSync(file, ["", "", JSON.stringify({ prompt: "p", responses: ["a", "b", "c"] })].join("\n"));
      assert.match((await cli("import", "--project", "hostile", file, ...dbArgs)).err, new RegExp(`${file}:3: a pairwise project needs exactly 2 responses$`));
      writeFileSync(file, ["", JSON.stringify({ prompt: "p\u0000", responses: ["a", "b"] })].join("\n"));
      assert.match((await cli("import", "--project", "hostile", file, ...dbArgs)).err, new RegExp(`${file}:2: prompt: .*NUL`));
      mkdirSync(join(dir, "a-dir"), { recursive: true });
      assert.equal((await cli("import", "--project", "hostile", join(dir, "a-dir"), ...dbArgs)).err, `rlhf feedback: ${join(dir, "a-dir")} is a directory; expected a file of items (JSON lines)`);
    });

    if (dialect === "sqlite") {
      test("SQLite: a second server on the file refuses to start; the CLI still works beside the first", async () => {
        await assert.rejects(openStore({ ...where, server: true }), /in use by another feedback server/);
        const beside = await openStore(where);
        await beside.close();
      });

      test("SQLite: new files are private; unwritable, corrupt and non-database files are refused at start, named", async () => {
        const fresh = join(dir, "fresh.sqlite");
        const opened = await openStore({ db: fresh, server: true });
        assert.equal(statSync(fresh).mode & 0o777, 0o600);
        assert.equal(statSync(fresh + "-wal").mode & 0o777, 0o600);
        assert.equal(statSync(fresh + ".server-lock").mode & 0o777, 0o600);
        await opened.close();

        const root = process.getuid?.() === 0;
        if (root) execFileSync("chattr", ["+i", fresh]); else execFileSync("chmod", ["0444", fresh]);
        try {
          await assert.rejects(openStore({ db: fresh, server: true }), (e: Error) => e.message.startsWith(`${fresh}: cannot write the database`));
        } finally {
          if (root) execFileSync("chattr", ["-i", fresh]); else execFileSync("chmod", ["0600", fresh]);
        }

        const notDb = join(dir, "notes.txt");
        writeFileSync(notDb, "these are not the pages you are looking for ".repeat(200));
        await assert.rejects(openStore({ db: notDb, server: true }), (e: Error) => e instanceof StoreError && e.message.startsWith(`${notDb} (is it a SQLite database?)`));
        await assert.rejects(openStore({ db: dir }), /is a directory; --db takes a SQLite database file/);

        const corrupt = join(dir, "corrupt.sqlite");
        const s = await openStore({ db: corrupt });
        await addUser(s, "someone", "labeler");
        await s.close();
        const fd = openSync(corrupt, "r+");
        const size = statSync(corrupt).size;
        for (let page = 4096 * 2; page < size; page += 4096) writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, page + 8);
        closeSync(fd);
        await assert.rejects(openStore({ db: corrupt, server: true }), new RegExp(`${corrupt}.*(corrupt|malformed)`));
      });
    }
  });
}

describe("feedback serve: exposure", () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), "feedback-exposure-")); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("--lease-minutes 0, half a TLS pair and a missing certificate are refused in one line", async () => {
    const db = join(dir, "e.sqlite");
    assert.match((await cli("serve", "--db", db, "--lease-minutes", "0")).err, /^rlhf feedback: --lease-minutes must be an integer of at least 1, got "0"$/);
    assert.match((await cli("serve", "--db", db, "--tls-cert", "c.pem")).err, /give both --tls-cert and --tls-key/);
    assert.match((await cli("serve", "--db", db, "--tls-cert", join(dir, "none.pem"), "--tls-key", "k")).err, /certificate file not found: .*none\.pem$/);
  });

  test("TLS with --tls-cert/--tls-key; slow and surplus connections are closed", async () => {
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
    const store = await openStore({ db: join(dir, "tls.sqlite") });
    const app = buildApp({ store, staticDir: dir, tls: { key: readFileSync(join(dir, "k.pem")), cert: readFileSync(join(dir, "c.pem")) } });
    const url = await app.listen({ host: "127.0.0.1", port: 0 });
    assert.match(url, /^https:/);
    const health = await new Promise<string>((resolve, reject) => {
      httpsGet(`${url}/healthz`, { rejectUnauthorized: false }, (res) => {
        let body = "";
        res.on("data", (d) => { body += d; }).on("end", () => resolve(body));
      }).on("error", reject);
    });
    assert.equal(JSON.parse(health).ok, true);
    await app.close();

    const plain = buildApp({ store, staticDir: dir, limits: { headersTimeout: 300, maxConnections: 3 } });
    const base = await plain.listen({ host: "127.0.0.1", port: 0 });
    const { port } = new URL(base);
    const sockets = Array.from({ length: 4 }, () => connect(Number(port), "127.0.0.1"));
    // Each client reads what it is sent: Node's own header check may answer 408 before our timer
    // closes the socket, and a socket that leaves those bytes unread never sees its 'end' or 'close'.
    const closedAt = sockets.map((s) => new Promise<number>((r) => { const t0 = Date.now(); s.on("close", () => r(Date.now() - t0)); s.on("error", () => {}); s.resume(); }));
    sockets.forEach((s) => s.write("GET /healthz HTTP/1.1\r\nhost: x\r\n")); // the headers never end
    const times = await Promise.all(closedAt);
    assert.ok(times.every((t) => t < 2500), `slow connections closed after ${times.join(", ")} ms`);
    assert.ok(Math.min(...times) < 250, "the connection over the cap is closed on arrival");
    await plain.close();
    await store.close();
  });

  test("--host 0.0.0.0 prints the addresses it is reachable at and warns that tokens travel in clear", async () => {
    const { spawnServer } = await import("./test-support.ts");
    const server = await spawnServer(["--db", join(dir, "open.sqlite")], ["--host", "0.0.0.0"]);
    await new Promise((r) => setTimeout(r, 300));
    assert.match(server.url, /^http:\/\/0\.0\.0\.0:\d+$/);
    assert.equal((await fetch(server.url.replace("0.0.0.0", "127.0.0.1") + "/healthz")).status, 200);
    await server.stop();
    assert.match(server.stderr(), /plain HTTP on a non-loopback address: API tokens travel in clear text/);
  });
});
