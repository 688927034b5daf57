// Starts the dashboard server on the given runs and keeps it up until SIGINT or SIGTERM.
import { existsSync } from "node:fs";
import { isLoopback, urlHost } from "../../feedback/server/address.ts";
import { InputError } from "../../io/errors.ts";
import { buildDashboard, DEFAULT_STATIC_DIR } from "./app.ts";
import { RunDir } from "./run-dir.ts";

export async function serveDashboard(dirs: string[], host: string, port: number): Promise<number> {
  if (!existsSync(DEFAULT_STATIC_DIR)) {
    throw new InputError(`the dashboard's page is not built (${DEFAULT_STATIC_DIR} is missing): run npm run build:web`);
  }
  const runs = dirs.map((d) => new RunDir(d));
  const app = buildDashboard({ runs });
  try {
    await app.listen({ host, port });
  } catch (e) {
    throw new InputError(`cannot listen on ${urlHost(host)}:${port}: ${(e as Error).message}`);
  }
  const bound = app.server.address() as { address: string; port: number };
  console.log(`dashboard listening on http://${urlHost(bound.address)}:${bound.port} (${runs.length} run${runs.length === 1 ? "" : "s"}: ${runs.map((r) => r.name).join(", ")})`);
  if (!isLoopback(bound.address)) console.error("warning: the dashboard has no accounts: anyone who reaches this address can read these runs' samples and metrics");
  await new Promise<void>((done) => {
    const stop = () => void app.close().then(done);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}
