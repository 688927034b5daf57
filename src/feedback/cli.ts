// `rlhf feedback ...`: run the labeling server and manage its users, items and exports.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { z } from "zod";
import { checkWritable, writeFileAtomic } from "../io/atomic.ts";
import { numberedLines, readInputBytes, readInputText } from "../io/text-file.ts";
import { ImportItem, Prompt, Role } from "./shared/schema.ts";
import { isLoopback, reachableAt, urlHost } from "./server/address.ts";
import { buildApp } from "./server/app.ts";
import { openStore, type Store } from "./server/db.ts";
import { exportLines } from "./server/export.ts";
import { DEFAULT_LEASE_MS } from "./server/labeling.ts";
import { importItems, projectByName } from "./server/projects.ts";
import { exportToTool, importToolFile, isTool, TOOLS } from "./server/interop/tools.ts";
import { addUser, listUsers, revokeToken, rotateToken, setDisabled } from "./server/users.ts";

type SampleCompletions = (opts: {
  model: string; tokenizer?: string; prompts: string[]; k: number; maxNewTokens?: number; temperature?: number; seed?: number;
}) => Promise<string[][]>;

const DB_HELP = `  --db FILE              SQLite database file (default feedback.sqlite; created readable by its owner only, and
                         migrated, on first use)
  --database-url URL     PostgreSQL instead: postgres://user:pass@host:port/db`;
const dbOptions = { db: { type: "string" }, "database-url": { type: "string" }, help: { type: "boolean", short: "h" } } as const;

const HELP: Record<string, string> = {
  "": `usage: rlhf feedback <command> [options]

  serve        run the labeling web app and its HTTP API
  user         add, list, rotate, revoke, disable or enable users and their API tokens
  import       add items from a JSONL file to a project
  generate     sample K responses per prompt from a model and add them as items
  export       write a project's answers as JSON lines for the reward-model and DPO trainers

Run \`rlhf feedback <command> --help\` for a command's options.`,
  serve: `usage: rlhf feedback serve [--db FILE | --database-url URL] [--host 127.0.0.1] [--port 8080] [--lease-minutes 10]
                           [--tls-cert FILE --tls-key FILE]

Serves the API under /api and the built web UI (dist/feedback-client/) at /. Runs schema migrations on start.
One server per SQLite file (a second one refuses to start); run several on PostgreSQL. Without TLS, API tokens
travel in clear text: off loopback, serve behind a TLS proxy or give --tls-cert and --tls-key.
${DB_HELP}
  --host ADDRESS         address to listen on (0.0.0.0: every interface)
  --lease-minutes N      how long a served item holds its slot for the labeler before others may take it (>= 1)
  --tls-cert FILE        PEM certificate (chain) to serve HTTPS with, and --tls-key FILE its PEM private key`,
  user: `usage: rlhf feedback user add NAME --role admin|labeler [--expires-days N]
       rlhf feedback user list [--json]
       rlhf feedback user rotate NAME [--expires-days N]
       rlhf feedback user revoke NAME | disable NAME | enable NAME
                                                   [--db FILE | --database-url URL] on each

add and rotate print the user's API token once; only its hash is stored. The web UI signs in with it.
rotate replaces a lost or leaked token (the old one stops working at once); revoke only stops it.
disable refuses every token of the user until enable; answers are kept either way. list shows each
user's role, token status, expiry, last use (to the minute) and answer count.
  --expires-days N       the token stops working after N days (default: never)
${DB_HELP}`,
  import: `usage: rlhf feedback import --project NAME FILE.jsonl [--from label-studio|argilla] [--db FILE | --database-url URL]

Each line: {"id"?: string, "prompt": string | [{"role", "content"}], "responses": [string, ...], "gold"?: answer,
            "suggestion"?: answer + {"confidence"?, "judge"?, "rationale"?}, "policy"?: string}
A gold answer uses response indices: {"ranking": [1, 0], "ties"?: [[i, j]]} or {"ratings": [5, 2, ...]}.
A suggestion is an AI judge's verdict in the same form; labelers see it only in projects that show suggestions.
Errors name FILE:LINE. Ids must be unique within the file and the project.
  --from TOOL            read another tool's export instead (pairwise and ranking projects): label-studio (its
                         task JSON: Pairwise or Ranker results) or argilla (2.x records, JSON array or lines).
                         Their annotations become answers by labelers of the annotators' names, created
                         without a usable token if new. Fields mapped: docs/feedback-interop.md
${DB_HELP}`,
  generate: `usage: rlhf feedback generate --project NAME --model PATH --prompts FILE [--k 4] [--tokenizer PATH]
                              [--max-new-tokens 256] [--temperature 1] [--seed 0] [--db FILE | --database-url URL]

Samples K responses for each prompt and imports them as items. FILE is JSONL ({"id"?, "prompt": string} per
line) or plain text (one prompt per line).
${DB_HELP}`,
  export: `usage: rlhf feedback export --project NAME [--format preference|ranking|label-studio|argilla] [--aggregate all|majority]
                            [--out FILE] [--db FILE | --database-url URL]

preference: {"prompt", "chosen", "rejected", ...} per decided response pair (TRL's preference format).
ranking:    {"prompt", "responses", "ranking": [indices best first], "ties"?, "ratings"?, ...}.
label-studio, argilla: one JSON array of every item with each labeler's answer, in that tool's import shape
            (docs/feedback-interop.md); --aggregate does not apply.
Default format: preference for pairwise projects, ranking otherwise. Writes to stdout without --out; with
--out the file is replaced whole or, when the write fails, left as it was (and the command fails).
${DB_HELP}`,
};

class FeedbackUsageError extends Error {}

function args<O extends ParseArgsConfig["options"]>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options: { ...dbOptions, ...options }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new FeedbackUsageError(`${(e as Error).message.split(". ")[0]} (see --help)`);
  }
}

const openFrom = (v: { db?: string; "database-url"?: string }, server = false) => openStore({ db: v.db, databaseUrl: v["database-url"], server });

function intOption(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new FeedbackUsageError(`--${name} must be an integer of at least ${min}, got ${JSON.stringify(value)}`);
  return n;
}

async function withStore<T>(v: { db?: string; "database-url"?: string }, fn: (s: Store) => Promise<T>): Promise<T> {
  const store = await openFrom(v);
  try { return await fn(store); } finally { await store.close(); }
}

async function serve(argv: string[]): Promise<number> {
  const { values: v } = args(argv, {
    host: { type: "string" }, port: { type: "string" }, "lease-minutes": { type: "string" },
    "tls-cert": { type: "string" }, "tls-key": { type: "string" },
  });
  if (v.help) return help("serve");
  const leaseMs = intOption(v["lease-minutes"], "lease-minutes", DEFAULT_LEASE_MS / 60_000, 1) * 60_000;
  const port = intOption(v.port, "port", 8080);
  const host = v.host ?? "127.0.0.1";
  if ((v["tls-cert"] === undefined) !== (v["tls-key"] === undefined)) throw new FeedbackUsageError("give both --tls-cert and --tls-key, or neither");
  const tls = v["tls-cert"] ? { cert: readInputBytes(v["tls-cert"], "certificate file"), key: readInputBytes(v["tls-key"]!, "key file") } : undefined;
  const store = await openFrom(v, true);
  const app = buildApp({ store, leaseMs, tls });
  try {
    await app.listen({ host, port });
  } catch (e) {
    await store.close();
    throw new Error(`cannot listen on ${urlHost(host)}:${port}: ${(e as Error).message}`);
  }
  const bound = app.server.address() as { address: string; port: number };
  const scheme = tls ? "https" : "http";
  const urls = reachableAt(bound.address, bound.port, scheme);
  console.log(`feedback server listening on ${scheme}://${urlHost(bound.address)}:${bound.port} (${store.dialect})` +
    (urls.length > 1 || urls[0] !== `${scheme}://${urlHost(bound.address)}:${bound.port}` ? `; reachable at ${urls.join(", ")}` : ""));
  if (!tls && !isLoopback(bound.address)) {
    console.error("warning: plain HTTP on a non-loopback address: API tokens travel in clear text. Serve behind a TLS proxy, or give --tls-cert and --tls-key (README: Feedback, Exposure).");
  }
  await new Promise<void>((done) => {
    const stop = () => { void app.close().then(() => store.close()).then(done); };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

const expiresOption = { "expires-days": { type: "string" } } as const;
function expiresDays(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new FeedbackUsageError(`--expires-days must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

function oneName(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new FeedbackUsageError(`give exactly one user NAME: rlhf feedback user ${usage}`);
  return positionals[0]!;
}

const when = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString().slice(0, 16).replace("T", " "));

async function user(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h") return help("user");
  switch (sub) {
    case "add": {
      const { values: v, positionals } = args(rest, { role: { type: "string" }, ...expiresOption });
      if (v.help) return help("user");
      const name = oneName(positionals, "add NAME --role admin|labeler");
      const role = Role.safeParse(v.role);
      if (!role.success) throw new FeedbackUsageError("--role must be admin or labeler");
      const { user, token } = await withStore(v, (s) => addUser(s, name, role.data, expiresDays(v["expires-days"])));
      console.error(`added ${user.role} ${user.name} (${user.id}); the token is shown only now:`);
      console.log(token);
      return 0;
    }
    case "rotate": {
      const { values: v, positionals } = args(rest, expiresOption);
      if (v.help) return help("user");
      const name = oneName(positionals, "rotate NAME");
      const token = await withStore(v, (s) => rotateToken(s, name, expiresDays(v["expires-days"])));
      console.error(`new token for ${name}; the old one no longer works. It is shown only now:`);
      console.log(token);
      return 0;
    }
    case "revoke": case "disable": case "enable": {
      const { values: v, positionals } = args(rest, {});
      if (v.help) return help("user");
      const name = oneName(positionals, `${sub} NAME`);
      await withStore(v, (s) => (sub === "revoke" ? revokeToken(s, name) : setDisabled(s, name, sub === "disable")));
      console.error(sub === "revoke" ? `revoked ${name}'s token; rlhf feedback user rotate ${name} issues a new one` : `${sub}d ${name}`);
      return 0;
    }
    case "list": {
      const { values: v, positionals } = args(rest, { json: { type: "boolean" } });
      if (v.help) return help("user");
      if (positionals.length) throw new FeedbackUsageError("rlhf feedback user list takes no NAME");
      const users = await withStore(v, listUsers);
      if (v.json) {
        for (const u of users) console.log(JSON.stringify(u));
        return 0;
      }
      const rows = [["name", "role", "status", "expires", "last used", "answers"],
        ...users.map((u) => [u.name, u.role, u.status, when(u.token_expires_at), when(u.last_used_at), String(u.answers)])];
      const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      for (const r of rows) console.log(r.map((x, c) => x.padEnd(widths[c]!)).join("  ").trimEnd());
      return 0;
    }
    default: throw new FeedbackUsageError(`unknown user command ${JSON.stringify(sub)}: add, list, rotate, revoke, disable or enable`);
  }
}

// One line per problem, for a terminal: zod's own rendering spans several lines per issue.
const issues = (e: z.ZodError) => e.issues.map((i) => `${i.path.length ? i.path.join(".") + ": " : ""}${i.message}`).join("; ");

/** Each non-blank line of a JSON-lines file parsed with `schema`, with its line number; errors name FILE:LINE. */
function readJsonl<T extends z.ZodType>(file: string, what: string, schema: T): { line: number; value: z.output<T> }[] {
  return numberedLines(readInputText(file, what)).map(({ line, text }) => {
    let json: unknown;
    try { json = JSON.parse(text); } catch (e) { throw new FeedbackUsageError(`${file}:${line}: not JSON: ${(e as Error).message}`); }
    const r = schema.safeParse(json);
    if (!r.success) throw new FeedbackUsageError(`${file}:${line}: ${issues(r.error)}`);
    return { line, value: r.data };
  });
}

async function importCmd(argv: string[]): Promise<number> {
  const { values: v, positionals } = args(argv, { project: { type: "string" }, from: { type: "string" } });
  if (v.help) return help("import");
  if (!v.project || positionals.length !== 1) throw new FeedbackUsageError("usage: rlhf feedback import --project NAME FILE.jsonl");
  const file = positionals[0]!;
  if (v.from !== undefined) {
    const tool = v.from;
    if (!isTool(tool)) throw new FeedbackUsageError(`--from must be ${TOOLS.join(" or ")}, got ${JSON.stringify(tool)}`);
    const text = readInputText(file, `${tool} file`);
    const n = await withStore(v, async (s) => importToolFile(s, await projectByName(s, v.project!), tool, text, file));
    console.error(`imported ${n.items} items and ${n.answers} answers from ${tool} into ${v.project}`);
    return 0;
  }
  const lines = readJsonl(file, "file of items (JSON lines)", ImportItem);
  if (lines.length === 0) throw new FeedbackUsageError(`${file}: no items`);
  const ids = await withStore(v, async (s) => importItems(s, await projectByName(s, v.project!), lines.map((l) => l.value), (n) => `${file}:${lines[n]!.line}`));
  console.error(`imported ${ids.length} items into ${v.project}`);
  return 0;
}

async function generate(argv: string[]): Promise<number> {
  const { values: v, positionals } = args(argv, {
    project: { type: "string" }, model: { type: "string" }, tokenizer: { type: "string" }, prompts: { type: "string" },
    k: { type: "string" }, "max-new-tokens": { type: "string" }, temperature: { type: "string" }, seed: { type: "string" },
  });
  if (v.help) return help("generate");
  if (!v.project || !v.model || !v.prompts || positionals.length) throw new FeedbackUsageError("usage: rlhf feedback generate --project NAME --model PATH --prompts FILE [--k 4]");
  const k = intOption(v.k, "k", 4);
  if (k < 2) throw new FeedbackUsageError("--k must be at least 2: an item compares 2+ responses");
  const prompts = numberedLines(readInputText(v.prompts, "prompt file")).map(({ line, text }) => {
    if (!text.trimStart().startsWith("{")) return { prompt: text };
    let json: unknown;
    try { json = JSON.parse(text); } catch (e) { throw new FeedbackUsageError(`${v.prompts}:${line}: not JSON: ${(e as Error).message}`); }
    const r = z.object({ id: z.string().optional(), prompt: Prompt }).safeParse(json);
    if (!r.success) throw new FeedbackUsageError(`${v.prompts}:${line}: ${issues(r.error)}`);
    if (typeof r.data.prompt !== "string") throw new FeedbackUsageError(`${v.prompts}:${line}: generate takes text prompts only`);
    return r.data as { id?: string; prompt: string };
  });
  const temperature = v.temperature === undefined ? undefined : Number(v.temperature);
  if (temperature !== undefined && !(temperature >= 0)) throw new FeedbackUsageError("--temperature must be a number >= 0");
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

const writeOut = async (out: string | undefined, text: string) => {
  if (out) await writeFileAtomic(out, text);
  else await new Promise<void>((done, fail) => process.stdout.write(text, (e) => (e ? fail(e) : done())));
};

async function exportCmd(argv: string[]): Promise<number> {
  const { values: v, positionals } = args(argv, {
    project: { type: "string" }, format: { type: "string" }, aggregate: { type: "string" }, out: { type: "string" },
  });
  if (v.help) return help("export");
  if (!v.project || positionals.length) throw new FeedbackUsageError("usage: rlhf feedback export --project NAME [--format preference|ranking] [--aggregate all|majority]");
  const tool = v.format;
  if (tool !== undefined && tool !== "preference" && tool !== "ranking" && !isTool(tool)) throw new FeedbackUsageError(`--format must be preference, ranking, ${TOOLS.join(" or ")}`);
  if (v.aggregate !== undefined && v.aggregate !== "all" && v.aggregate !== "majority") throw new FeedbackUsageError("--aggregate must be all or majority");
  if (isTool(tool) && v.aggregate !== undefined) throw new FeedbackUsageError(`--aggregate does not apply to --format ${tool}: it writes every labeler's answer`);
  if (v.out) checkWritable(v.out);
  if (isTool(tool)) {
    const r = await withStore(v, async (s) => exportToTool(s, await projectByName(s, v.project!), tool));
    await writeOut(v.out, r.json);
    console.error(`exported ${r.records} ${tool} records from ${v.project}${v.out ? ` to ${v.out}` : ""}` +
      (r.leftOut ? `; ${r.leftOut} tied answers left out (${tool} has no ties)` : ""));
    return 0;
  }
  const lines = await withStore(v, async (s) => exportLines(s, await projectByName(s, v.project!), v.format as "preference" | undefined, (v.aggregate ?? "all") as "all"));
  await writeOut(v.out, lines.map((l) => l + "\n").join(""));
  console.error(`exported ${lines.length} lines from ${v.project}${v.out ? ` to ${v.out}` : ""}`);
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
      case "user": return await user(rest);
      case "import": return await importCmd(rest);
      case "generate": return await generate(rest);
      case "export": return await exportCmd(rest);
      case undefined: case "--help": case "-h": case "help": return help("");
      default: throw new FeedbackUsageError(`unknown feedback command ${JSON.stringify(cmd)} (rlhf feedback --help lists them)`);
    }
  } catch (e) {
    // One line: every error here is about the input, the database or the network, and its message
    // names which; RLHF_DEBUG=1 adds the stack for a bug report.
    const err = e instanceof Error ? e : new Error(String(e));
    console.error(`rlhf feedback: ${process.env.RLHF_DEBUG === "1" ? err.stack : err.message.replace(/\s*\n\s*/g, "; ")}`);
    return 1;
  }
}
