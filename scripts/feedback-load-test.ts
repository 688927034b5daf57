// Load test for the feedback server: N concurrent labelers fetch and answer items over loopback
// for a while, then the database is checked: no acknowledged answer lost, no duplicate, no item
// over its overlap. With --kill-after the server is killed with SIGKILL mid-run, restarted, and the
// labelers' unacknowledged requests are retried with the same request ids.
//
// Closed loop (the default): each labeler answers as soon as the last answer came back (after
// --think-ms), so a slow server slows the arrivals and hides its own latency. Open loop (--rate R):
// each labeler starts a judgement (GET next, then POST the answer) at Poisson arrivals, R a second
// on average, whether or not the previous one is done; a judgement that has to wait for the
// previous one counts the wait in its GET's latency (no coordinated omission).
//
//   npm run feedback:load -- [--duration 60] [--labelers 50] [--overlap 3] [--think-ms 0 | --rate R] [--kill-after SECONDS]
//                            [--database-url postgres://... | --db FILE] [--cpu-prof DIR]
//
// --cpu-prof writes the server's V8 CPU profile to DIR (open it in Chrome DevTools or speedscope).
import { randomUUID } from "node:crypto";
import { Agent, request as httpRequest } from "node:http";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { addUser } from "../src/feedback/server/users.ts";
import { openStore, type StoreOptions } from "../src/feedback/server/db.ts";
import { spawnServer, type ServerProcess } from "../src/feedback/server/test-support.ts";
import type { AnswerResponse, NextItem, Project } from "../src/feedback/shared/schema.ts";

export interface LoadOptions {
  store: StoreOptions; // where the server keeps its data (created and migrated here)
  labelers: number;
  durationMs: number;
  overlap: number;
  items: number;
  killAfterMs?: number; // SIGKILL the server this long into the run, then restart it
  thinkMs?: number; // pause between a labeler's answers (0: as fast as the server allows)
  ratePerLabeler?: number; // open loop: judgements per second per labeler, Poisson arrivals (thinkMs is ignored)
  cpuProfDir?: string; // write the server's CPU profile here
  log?: (line: string) => void;
}

export interface LoadReport {
  labelers: number; think_ms: number; mode: "closed" | "open"; rate_per_labeler: number | null; seconds: number; requests: number; answers_acked: number; answers_per_s: number;
  replays_checked: number; transport_errors: number; http_errors: Record<string, number>;
  latency_ms: { p50: number; p95: number; p99: number; max: number };
  latency_ms_by_route: Record<string, { p50: number; p99: number; n: number }>;
  server_killed: boolean;
  // CPU time per request of the server and of this load generator (Linux; null elsewhere, or when
  // the server was killed): unlike latency, it hardly moves when other jobs share the cores.
  cpu_ms_per_request: { server: number; client: number } | null;
  // The checks, each 0 when all is well.
  lost_answers: number; duplicate_answers: number; over_overlap_items: number; answer_count_mismatches: number;
  item_open_mismatches: number; // answers whose item_open flag (progress counts) disagrees with their item
}

// User + system CPU seconds a process has used so far, from /proc (null where there is none).
function cpuSeconds(pid: number | undefined): number | null {
  const stat = pid !== undefined && existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8") : null;
  if (!stat) return null;
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields from the 3rd on; utime and stime are the 14th and 15th
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks; USER_HZ is 100 on Linux
}

const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0);
const round = (x: number) => Math.round(x * 100) / 100;

export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const log = opts.log ?? (() => {});
  const dbArgs = opts.store.databaseUrl ? ["--database-url", opts.store.databaseUrl] : ["--db", opts.store.db!];
  const suffix = randomUUID().slice(0, 8);
  const setup = await openStore(opts.store);
  const admin = (await addUser(setup, `load-admin-${suffix}`, "admin")).token;
  const tokens: string[] = [];
  for (let i = 0; i < opts.labelers; i++) tokens.push((await addUser(setup, `load-labeler-${suffix}-${i}`, "labeler")).token);
  await setup.close();

  const running: { server?: ServerProcess } = {};
  try {
    return await drive(opts, dbArgs, admin, tokens, running, suffix, log);
  } finally {
    await running.server?.stop(); // also when the run fails: never leave a server behind
  }
}

async function drive(opts: LoadOptions, dbArgs: string[], admin: string, tokens: string[], running: { server?: ServerProcess }, suffix: string, log: (l: string) => void): Promise<LoadReport> {
  const nodeArgs = opts.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", opts.cpuProfDir] : [];
  let server = running.server = await spawnServer(dbArgs, [], nodeArgs);
  let base = server.url;
  // node:http with keep-alive rather than fetch: the load generator shares the machine with the
  // server, and fetch costs it about twice the CPU per request.
  const agent = new Agent({ keepAlive: true });
  const call = (token: string, method: string, path: string, body?: unknown) => new Promise<{ status: number; json: any }>((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = { authorization: `Bearer ${token}`, ...(payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {}) };
    const req = httpRequest(base + path, { method, agent, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => { text += chunk; });
      res.on("error", reject);
      res.on("end", () => {
        try { resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : null }); } catch (e) { reject(e); }
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
  const project = (await call(admin, "POST", "/api/projects", { name: `load-${suffix}`, task: "pairwise", overlap: opts.overlap })).json as Project;
  const items = Array.from({ length: opts.items }, (_, i) => ({ id: `q${i}`, prompt: `prompt ${i}`, responses: [`a${i}`, `b${i}`] }));
  for (let i = 0; i < items.length; i += 10_000) {
    const imported = await call(admin, "POST", `/api/projects/${project.id}/items`, items.slice(i, i + 10_000));
    if (imported.status !== 201) throw new Error(`import failed: ${JSON.stringify(imported.json)}`);
  }
  log(`project ${project.id}: ${opts.items} pairwise items, overlap ${opts.overlap}, ${opts.labelers} labelers, ${dbArgs[0]}`);

  const latencies = new Map<string, number[]>();
  const acked = new Map<string, { id: string; item: string; token: string }>(); // request_id -> answer
  const httpErrors: Record<string, number> = {};
  let requests = 0, transportErrors = 0, replays = 0, down = false;
  // `since`: when the request was due (open loop), if that is earlier than when it could be sent.
  const timed = async (route: string, token: string, method: string, path: string, body?: unknown, since?: number) => {
    const t0 = Math.min(since ?? Infinity, performance.now());
    const r = await call(token, method, path, body);
    const ms = performance.now() - t0;
    requests++;
    if (!latencies.has(route)) latencies.set(route, []);
    latencies.get(route)!.push(ms);
    return r;
  };
  const serverCpu0 = cpuSeconds(server.child.pid), clientCpu0 = process.cpuUsage();
  const start = performance.now();
  const deadline = start + opts.durationMs;

  const labeler = async (token: string) => {
    let pending: { item: string; body: Record<string, unknown> } | undefined; // sent, not acknowledged
    let due = start; // open loop: when this labeler's next judgement arrives
    while (performance.now() < deadline) {
      try {
        if (!pending) {
          if (opts.ratePerLabeler) {
            due += (-Math.log(1 - Math.random()) / opts.ratePerLabeler) * 1000; // exponential gaps: Poisson arrivals
            if (due >= deadline) return;
            const wait = due - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          }
          const next = await timed("GET next", token, "GET", `/api/projects/${project.id}/next`, undefined, opts.ratePerLabeler ? due : undefined);
          if (next.status === 204) return;
          if (next.status !== 200) { httpErrors[`next ${next.status}`] = (httpErrors[`next ${next.status}`] ?? 0) + 1; continue; }
          const item = next.json as NextItem;
          const ids = item.responses.map((r) => r.id);
          const roll = Math.random();
          const body = roll < 0.05 ? { skip: true } : roll < 0.15 ? { ranking: ids, ties: [[ids[0], ids[1]]] } : { ranking: Math.random() < 0.5 ? ids : [...ids].reverse() };
          pending = { item: item.id, body: { request_id: randomUUID(), ...body, rationale: "load test" } };
        }
        const res = await timed("POST answer", token, "POST", `/api/items/${pending.item}/answers`, pending.body);
        if (res.status !== 201 && res.status !== 200) {
          httpErrors[`answer ${res.status}`] = (httpErrors[`answer ${res.status}`] ?? 0) + 1;
          pending = undefined;
          continue;
        }
        const a = res.json as AnswerResponse;
        acked.set(a.request_id, { id: a.id, item: a.item_id, token });
        // Now and then send the same request again, as a client that never saw the reply would.
        if (Math.random() < 0.05) {
          const again = await timed("POST answer", token, "POST", `/api/items/${pending.item}/answers`, pending.body);
          replays++;
          if (again.status !== 200 || (again.json as AnswerResponse).id !== a.id) httpErrors["replay mismatch"] = (httpErrors["replay mismatch"] ?? 0) + 1;
        }
        pending = undefined;
        if (opts.thinkMs && !opts.ratePerLabeler) await new Promise((r) => setTimeout(r, opts.thinkMs! * (0.5 + Math.random())));
      } catch {
        // Connection refused or reset: the server is down (killed on purpose). Keep `pending`, retry.
        transportErrors++;
        await new Promise((r) => setTimeout(r, down ? 100 : 20));
      }
    }
  };

  let killed = false;
  const killer = opts.killAfterMs === undefined ? Promise.resolve() : (async () => {
    await new Promise((r) => setTimeout(r, opts.killAfterMs));
    down = true;
    await server.kill9();
    killed = true;
    log(`server killed with SIGKILL after ${opts.killAfterMs} ms, ${acked.size} answers acknowledged so far`);
    server = running.server = await spawnServer(dbArgs, [], nodeArgs);
    base = server.url;
    down = false;
    log(`server restarted at ${base}`);
  })();
  await Promise.all([...tokens.map(labeler), killer]);
  agent.destroy();
  const seconds = (performance.now() - start) / 1000;
  const serverCpu = killed ? null : cpuSeconds(server.child.pid), clientCpu = process.cpuUsage(clientCpu0);
  const cpu = serverCpu === null || serverCpu0 === null ? null
    : { server: round(((serverCpu - serverCpu0) * 1000) / requests), client: round((clientCpu.user + clientCpu.system) / 1000 / requests) };

  // Check the database itself, not the API.
  const check = await openStore(opts.store);
  const rows = await check.db.selectFrom("answers").select(["id", "request_id", "item_id", "labeler_id", "skip", "item_open"]).where("project_id", "=", project.id).execute();
  const byRequest = new Map(rows.map((r) => [r.request_id, r]));
  let lost = 0;
  for (const [rid, a] of acked) if (byRequest.get(rid)?.id !== a.id) lost++;
  const duplicates = rows.length - new Set(rows.map((r) => `${r.item_id}/${r.labeler_id}`)).size;
  const perItem = new Map<string, number>();
  for (const r of rows) if (!r.skip) perItem.set(r.item_id, (perItem.get(r.item_id) ?? 0) + 1);
  const over = [...perItem.values()].filter((n) => n > opts.overlap).length;
  const counters = await check.db.selectFrom("items").select(["id", "answer_count", "open", "is_gold"]).where("project_id", "=", project.id).execute();
  const mismatches = counters.filter((c) => c.answer_count !== (perItem.get(c.id) ?? 0) || c.open !== (c.answer_count < opts.overlap ? 1 : 0)).length;
  const openItems = new Set(counters.filter((c) => c.open === 1 && c.is_gold === 0).map((c) => c.id));
  const flagMismatches = rows.filter((r) => r.item_open !== (openItems.has(r.item_id) ? 1 : 0)).length;
  await check.close();

  const all = [...latencies.values()].flat().sort((a, b) => a - b);
  const byRoute = Object.fromEntries([...latencies].map(([route, xs]) => {
    const s = [...xs].sort((a, b) => a - b);
    return [route, { p50: round(pct(s, 50)), p99: round(pct(s, 99)), n: s.length }];
  }));
  return {
    labelers: opts.labelers, think_ms: opts.ratePerLabeler ? 0 : opts.thinkMs ?? 0,
    mode: opts.ratePerLabeler ? "open" : "closed", rate_per_labeler: opts.ratePerLabeler ?? null, seconds: round(seconds), requests, answers_acked: acked.size, answers_per_s: round(acked.size / seconds),
    replays_checked: replays, transport_errors: transportErrors, http_errors: httpErrors,
    latency_ms: { p50: round(pct(all, 50)), p95: round(pct(all, 95)), p99: round(pct(all, 99)), max: round(all.at(-1) ?? 0) },
    latency_ms_by_route: byRoute, server_killed: killed, cpu_ms_per_request: cpu,
    lost_answers: lost, duplicate_answers: duplicates, over_overlap_items: over, answer_count_mismatches: mismatches,
    item_open_mismatches: flagMismatches,
  };
}

async function main() {
  const { values: v } = parseArgs({
    options: {
      duration: { type: "string", default: "60" }, labelers: { type: "string", default: "50" }, overlap: { type: "string", default: "3" },
      items: { type: "string" }, "think-ms": { type: "string", default: "0" }, rate: { type: "string" }, "kill-after": { type: "string" }, db: { type: "string" }, "database-url": { type: "string" },
      "cpu-prof": { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) {
    console.log("usage: npm run feedback:load -- [--duration 60] [--labelers 50] [--overlap 3] [--items N] [--think-ms 0 | --rate R] [--kill-after SECONDS] [--db FILE | --database-url URL] [--cpu-prof DIR]");
    return 0;
  }
  const durationMs = Number(v.duration) * 1000;
  const labelers = Number(v.labelers);
  const tmp = v.db || v["database-url"] ? undefined : mkdtempSync(join(tmpdir(), "feedback-load-"));
  const report = await runLoad({
    store: v["database-url"] ? { databaseUrl: v["database-url"] } : { db: v.db ?? join(tmp!, "load.sqlite") },
    labelers, durationMs, overlap: Number(v.overlap),
    items: v.items ? Number(v.items) : Math.max(1000, Math.ceil((labelers * durationMs) / 1000 * 30 / Number(v.overlap))),
    thinkMs: Number(v["think-ms"]),
    ratePerLabeler: v.rate === undefined ? undefined : Number(v.rate),
    killAfterMs: v["kill-after"] ? Number(v["kill-after"]) * 1000 : undefined,
    cpuProfDir: v["cpu-prof"],
    log: (l) => console.error(l),
  });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  console.log(JSON.stringify(report, null, 2));
  const ok = report.lost_answers === 0 && report.duplicate_answers === 0 && report.over_overlap_items === 0 && report.answer_count_mismatches === 0 && report.item_open_mismatches === 0;
  console.error(ok ? `OK: p99 ${report.latency_ms.p99} ms over ${report.requests} requests` : "FAILED: see the checks above");
  return ok ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) process.exitCode = await main();
