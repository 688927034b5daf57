// `rlhf feedback ...`: run the labeling server and manage its users, items and exports.
import { createWriteStream, readFileSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { z } from "zod";
import { ImportItem, Prompt, Role } from "./shared/schema.ts";
import { buildApp } from "./server/app.ts";
import { addUser } from "./server/auth.ts";
import { openStore, type Store } from "./server/db.ts";
import { HttpError } from "./server/errors.ts";
import { exportLines } from "./server/export.ts";
import { DEFAULT_LEASE_MS } from "./server/labeling.ts";
import { importItems, projectByName } from "./server/projects.ts";

type SampleCompletions = (opts: {
  model: string; tokenizer?: string; prompts: string[]; k: number; maxNewTokens?: number; temperature?: number; seed?: number;
}) => Promise<string[][]>;

const DB_HELP = `  --db FILE              SQLite database file (default feedback.sqlite; created and migrated on first use)
  --database-url URL     PostgreSQL instead: postgres://user:pass@host:port/db`;
const dbOptions = { db: { type: "string" }, "database-url": { type: "string" }, help: { type: "boolean", short: "h" } } as const;

const HELP: Record<string, string> = {
  "": `usage: rlhf feedback <command> [options]

  serve        run the labeling web app and its HTTP API
  user add     add an admin or labeler and print their API token
  import       add items from a JSONL file to a project
  generate     sample K responses per prompt from a model and add them as items
  export       write a project's answers as JSON lines for the reward-model and DPO trainers

Run \`rlhf feedback <command> --help\` for a command's options.`,
  serve: `usage: rlhf feedback serve [--db FILE | --database-url URL] [--host 127.0.0.1] [--port 8080] [--lease-minutes 10]

Serves the API under /api and the built web UI (dist/feedback-client/) at /. Runs schema migrations on start.
${DB_HELP}
  --lease-minutes N      how long a served item holds its slot for the labeler before others may take it`,
  "user add": `usage: rlhf feedback user add NAME --role admin|labeler [--db FILE | --database-url URL]

Prints the new user's API token once; only its hash is stored. The web UI signs in with it.
${DB_HELP}`,
  import: `usage: rlhf feedback import --project NAME FILE.jsonl [--db FILE | --database-url URL]

Each line: {"id"?: string, "prompt": string | [{"role", "content"}], "responses": [string, ...], "gold"?: answer}
A gold answer uses response indices: {"ranking": [1, 0], "ties"?: [[i, j]]} or {"ratings": [5, 2, ...]}.
${DB_HELP}`,
  generate: `usage: rlhf feedback generate --project NAME --model PATH --prompts FILE [--k 4] [--tokenizer PATH]
                              [--max-new-tokens 256] [--temperature 1] [--seed 0] [--db FILE | --database-url URL]

Samples K responses for each prompt and imports them as items. FILE is JSONL ({"id"?, "prompt": string} per
line) or plain text (one prompt per line).
${DB_HELP}`,
  export: `usage: rlhf feedback export --project NAME [--format preference|ranking] [--aggregate all|majority] [--out FILE]
                            [--db FILE | --database-url URL]

preference: {"prompt", "chosen", "rejected", ...} per decided response pair (TRL's preference format).
ranking:    {"prompt", "responses", "ranking": [indices best first], "ties"?, "ratings"?, ...}.
Default format: preference for pairwise projects, ranking otherwise. Writes to stdout without --out.
${DB_HELP}`,
};

function args<O extends ParseArgsConfig["options"]>(argv: string[], options: O) {
  return parseArgs({ args: argv, options: { ...dbOptions, ...options }, allowPositionals: true, strict: true });
}

const openFrom = (v: { db?: string; "database-url"?: string }) => openStore({ db: v.db, databaseUrl: v["database-url"] });

function intOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

async function withStore<T>(v: { db?: string; "database-url"?: string }, fn: (s: Store) => Promise<T>): Promise<T> {
  const store = await openFrom(v);
  try { return await fn(store); } finally { await store.close(); }
}

async function serve(argv: string[]): Promise<number> {
  const { values: v } = args(argv, { host: { type: "string" }, port: { type: "string" }, "lease-minutes": { type: "string" } });
  if (v.help) return help("serve");
  const store = await openFrom(v);
  const app = buildApp({ store, leaseMs: intOption(v["lease-minutes"], "lease-minutes", DEFAULT_LEASE_MS / 60_000) * 60_000 });
  const address = await app.listen({ host: v.host ?? "127.0.0.1", port: intOption(v.port, "port", 8080) });
  console.log(`feedback server listening on ${address} (${store.dialect})`);
  await new Promise<void>((done) => {
    const stop = () => { void app.close().then(() => store.close()).then(done); };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

async function userAdd(argv: string[]): Promise<number> {
  const { values: v, positionals } = args(argv, { role: { type: "string" } });
  if (v.help) return help("user add");
  if (positionals.length !== 1) throw new Error("give exactly one user NAME");
  const role = Role.safeParse(v.role);
  if (!role.success) throw new Error("--role must be admin or labeler");
  const { user, token } = await withStore(v, (s) => addUser(s, positionals[0]!, role.data));
  console.error(`added ${user.role} ${user.name} (${user.id}); the token is shown only now:`);
  console.log(token);
  return 0;
}

function readJsonl<T extends z.ZodType>(file: string, schema: T): z.output<T>[] {
  return readFileSync(file, "utf8").split("\n").flatMap((line, i) => {
    if (!line.trim()) return [];
    let json: unknown;
    try { json = JSON.parse(line); } catch (e) { throw new Error(`${file}:${i + 1}: not JSON: ${(e as Error).message}`); }
    const r = schema.safeParse(json);
    if (!r.success) throw new Error(`${file}:${i + 1}: ${z.prettifyError(r.error)}`);
    return [r.data];
  });
}

async function importCmd(argv: string[]): Promise<number> {
  const { values: v, positionals } = args(argv, { project: { type: "string" } });
  if (v.help) return help("import");
  if (!v.project || positionals.length !== 1) throw new Error("usage: rlhf feedback import --project NAME FILE.jsonl");
  const items = readJsonl(positionals[0]!, ImportItem);
  if (items.length === 0) throw new Error(`${positionals[0]}: no items`);
  const ids = await withStore(v, async (s) => importItems(s, await projectByName(s, v.project!), items));
  console.error(`imported ${ids.length} items into ${v.project}`);
  return 0;
}

async function generate(argv: string[]): Promise<number> {
  const { values: v, positionals } = args(argv, {
    project: { type: "string" }, model: { type: "string" }, tokenizer: { type: "string" }, prompts: { type: "string" },
    k: { type: "string" }, "max-new-tokens": { type: "string" }, temperature: { type: "string" }, seed: { type: "string" },
  });
  if (v.help) return help("generate");
  if (!v.project || !v.model || !v.prompts || positionals.length) throw new Error("usage: rlhf feedback generate --project NAME --model PATH --prompts FILE [--k 4]");
  const k = intOption(v.k, "k", 4);
  if (k < 2) throw new Error("--k must be at least 2: an item compares 2+ responses");
  const lines = readFileSync(v.prompts, "utf8").split("\n").filter((l) => l.trim());
  const prompts = lines.map((line, i) => {
    if (!line.trimStart().startsWith("{")) return { prompt: line };
    const r = z.object({ id: z.string().optional(), prompt: Prompt }).safeParse(JSON.parse(line));
    if (!r.success) throw new Error(`${v.prompts}:${i + 1}: ${z.prettifyError(r.error)}`);
    if (typeof r.data.prompt !== "string") throw new Error(`${v.prompts}:${i + 1}: generate takes text prompts only`);
    return r.data as { id?: string; prompt: string };
  });
  const temperature = v.temperature === undefined ? undefined : Number(v.temperature);
  if (temperature !== undefined && !(temperature >= 0)) throw new Error("--temperature must be a number >= 0");
  // Loaded lazily: sampling pulls in the model engine, which no other subcommand needs.
  // The path is a variable so this file typechecks on its own; the signature is the agreed one.
  const samplerPath = "../generation/sample-texts.ts";
  const { sampleCompletions } = (await import(samplerPath)) as { sampleCompletions: SampleCompletions };
  const samples = await sampleCompletions({
    model: v.model, tokenizer: v.tokenizer, prompts: prompts.map((p) => p.prompt), k,
    maxNewTokens: v["max-new-tokens"] === undefined ? undefined : intOption(v["max-new-tokens"], "max-new-tokens", 256),
    temperature, seed: v.seed === undefined ? undefined : intOption(v.seed, "seed", 0),
  });
  const items = prompts.map((p, i) => ({ ...p, responses: samples[i]! }));
  const ids = await withStore(v, async (s) => importItems(s, await projectByName(s, v.project!), items));
  console.error(`generated ${k} responses for ${ids.length} prompts into ${v.project}`);
  return 0;
}

async function exportCmd(argv: string[]): Promise<number> {
  const { values: v, positionals } = args(argv, {
    project: { type: "string" }, format: { type: "string" }, aggregate: { type: "string" }, out: { type: "string" },
  });
  if (v.help) return help("export");
  if (!v.project || positionals.length) throw new Error("usage: rlhf feedback export --project NAME [--format preference|ranking] [--aggregate all|majority]");
  if (v.format !== undefined && v.format !== "preference" && v.format !== "ranking") throw new Error("--format must be preference or ranking");
  if (v.aggregate !== undefined && v.aggregate !== "all" && v.aggregate !== "majority") throw new Error("--aggregate must be all or majority");
  const lines = await withStore(v, async (s) => exportLines(s, await projectByName(s, v.project!), v.format as "preference" | undefined, (v.aggregate ?? "all") as "all"));
  const out = v.out ? createWriteStream(v.out) : process.stdout;
  for (const l of lines) out.write(l + "\n");
  if (v.out) await new Promise<void>((done, fail) => (out as ReturnType<typeof createWriteStream>).end(() => done()).on("error", fail));
  console.error(`exported ${lines.length} lines from ${v.project}`);
  return 0;
}

function help(cmd: string): number {
  console.log(HELP[cmd]);
  return 0;
}

export async function feedbackCli(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "serve": return await serve(rest);
      case "user":
        if (rest[0] === "add") return await userAdd(rest.slice(1));
        if (rest[0] === "--help" || rest[0] === "-h") return help("user add");
        throw new Error("usage: rlhf feedback user add NAME --role admin|labeler");
      case "import": return await importCmd(rest);
      case "generate": return await generate(rest);
      case "export": return await exportCmd(rest);
      case undefined: case "--help": case "-h": case "help": return help("");
      default: throw new Error(`unknown feedback command ${JSON.stringify(cmd)}\n\n${HELP[""]}`);
    }
  } catch (e) {
    console.error(`rlhf feedback: ${e instanceof HttpError || e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
