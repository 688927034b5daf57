// What the browser tests share: the Chromium they drive, a fresh build of a web client, and a
// server started through its CLI, waited for until it prints the URL it listens on.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

export async function launchChromium(): Promise<Browser> {
  // Fail, not skip: a missing browser would otherwise pass CI without testing the UI at all.
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup-test-deps.sh to install Chromium for the browser tests`);
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Builds a client from the current sources, so a test never passes against a stale dist/. */
export function buildClient(viteConfig: string): void {
  const build = spawnSync(process.execPath, [join(ROOT, "node_modules/vite/bin/vite.js"), "build", "--config", viteConfig, "--logLevel", "warn"],
    { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  assert.equal(build.status, 0, `vite build failed:\n${build.stdout}\n${build.stderr}`);
}

/** Runs `node args…` from the repository root until it prints `listening on http://…`; resolves to that URL. */
export async function startServer(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(output);
      if (m) { clearTimeout(timer); resolve(m[1]!); }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${output}`)); });
  });
  return { child, url };
}

export async function stopServer(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  child.kill("SIGTERM");
  await new Promise((done) => child.once("exit", done));
}
