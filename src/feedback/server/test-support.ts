// Helpers for the feedback tests and the load-test script: a real server in a child process
// (so it can be killed with SIGKILL) and a throwaway PostgreSQL cluster.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

export interface ServerProcess { url: string; child: ChildProcess; stderr(): string; stop(): Promise<void>; kill9(): Promise<void> }

// `dbArgs` is e.g. ["--db", file] or ["--database-url", url]; `nodeArgs` go to node itself (--cpu-prof).
export async function spawnServer(dbArgs: string[], extra: string[] = [], nodeArgs: string[] = []): Promise<ServerProcess> {
  const code = `const { feedbackCli } = await import(${JSON.stringify(CLI)}); process.exitCode = await feedbackCli(process.argv.slice(1));`;
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", "--input-type=module", "-e", code, "--", "serve", ...dbArgs, "--port", "0", ...extra], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  let err = "";
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.stderr!.on("data", (d) => { err += d; });
    child.once("exit", (code) => reject(new Error(`feedback server exited with ${code} before listening:\n${err}`)));
    setTimeout(() => reject(new Error(`feedback server did not start in 30 s:\n${err}`)), 30_000).unref();
  });
  return {
    url, child, stderr: () => err,
    async stop() { child.kill("SIGTERM"); await exited; },
    async kill9() { child.kill("SIGKILL"); await exited; },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    }).on("error", reject);
  });
}

export interface Postgres { url: string; stop(): void }

// A throwaway cluster in a temp dir on a free loopback port. PostgreSQL refuses to run as root, so
// when we are root the cluster belongs to the `postgres` OS user. Missing binaries are an error,
// not a skip: CI installs them with scripts/setup-test-deps.sh.
export async function startPostgres(): Promise<Postgres> {
  const root = "/usr/lib/postgresql";
  const version = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "pg_ctl"))).sort((a, b) => Number(b) - Number(a))[0] : undefined;
  if (!version) throw new Error("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run scripts/setup-test-deps.sh (Debian package `postgresql`)");
  const bin = (name: string) => join(root, version, "bin", name);
  const dir = mkdtempSync(join(tmpdir(), "feedback-pg-"));
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const full = asRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] as const : [cmd, args] as const;
    const r = spawnSync(full[0], full[1], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  };
  if (asRoot) {
    const id = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
    const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
    if (id.status !== 0) throw new Error("running as root, but there is no `postgres` OS user to own the test cluster");
    chownSync(dir, Number(id.stdout), Number(gid.stdout));
  }
  const data = join(dir, "data");
  const port = await freePort();
  run(bin("initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  run(bin("pg_ctl"), ["-D", data, "-l", join(dir, "log"), "-w", "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200`, "start"]);
  const stop = () => {
    try { run(bin("pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"]); } finally { rmSync(dir, { recursive: true, force: true }); }
  };
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop };
}
