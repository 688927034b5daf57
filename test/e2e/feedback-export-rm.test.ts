// End to end from labels to a reward model: the real feedback server (spawned through its CLI on a
// fresh SQLite file), two labelers answering a ranking project over the HTTP API (text and chat
// prompts, ties, skips, a ranking that ties everything), the export in both formats by
// `rlhf feedback export` and by HTTP, and then the real `rlhf rm train` on each exported file,
// unedited, a few steps on stories260K; `rlhf rm eval` reloads the result as a reward model.
//
//   node --import tsx --test test/e2e/feedback-export-rm.test.ts
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { sharedData } from "../../src/io/test-helpers.ts";
import { spawnServer, type ServerProcess } from "../../src/feedback/server/test-support.ts";
import type { AnswerRequest, NextItem, Prompt } from "../../src/feedback/shared/schema.ts";

const BIN = fileURLToPath(new URL("../../bin/rlhf.mjs", import.meta.url));
const MODEL = sharedData("llama2c/stories260K.bin");

// Responses best first; odd items are imported worst first, so the ranking indices differ per item.
const ITEMS: { id: string; prompt: Prompt; best: [string, string, string] }[] = [
  { id: "cat", prompt: "Once upon a time, a cat", best: [" sat in the sun and purred.", " ran after a ball.", " the the the cat cat."] },
  {
    id: "dog", prompt: [{ role: "system", content: "Tell short stories." }, { role: "user", content: "A story about a dog." }],
    best: ["Tom had a dog. They played all day.", "The dog was big.", "dog dog dog"],
  },
  { id: "tree", prompt: "Lily saw a big tree", best: [" and climbed it with her dad.", " in the park.", " tree tree."] },
  { id: "sun", prompt: [{ role: "user", content: "Why is the sun warm?" }], best: ["The sun is a big fire far away.", "It is hot.", "Blue."] },
  { id: "ball", prompt: "Ben had a red ball", best: [" and gave it to his friend.", " that he liked.", " ball ball ball."] },
  { id: "gibberish", prompt: "qwpoeiru zxmcnv", best: ["?", "Could you say that again?", "zxmcnv"] },
];
const imported = ITEMS.map((it, n) => ({ id: it.id, prompt: it.prompt, responses: n % 2 ? [...it.best].reverse() : [...it.best] }));

// How each labeler answers: by quality, with some ties and skips.
function judge(labeler: string, external: string, shown: NextItem["responses"]): Omit<AnswerRequest, "request_id"> {
  if (external === "gibberish") return { skip: true };
  if (labeler === "kim" && external === "ball") return { skip: true };
  const def = ITEMS.find((it) => it.id === external)!;
  const ranking = [...shown].sort((a, b) => def.best.indexOf(a.text) - def.best.indexOf(b.text)).map((r) => r.id);
  if (labeler === "lin" && external === "tree") return { ranking, ties: [[ranking[0]!, ranking[1]!], [ranking[1]!, ranking[2]!]] }; // all equal: no pair
  if (labeler === "lin" && (external === "dog" || external === "cat")) return { ranking, ties: [[ranking[1]!, ranking[2]!]] };
  return { ranking };
}

let dir = "";
let db = "";
let server: ServerProcess | undefined;
const tokens: Record<string, string> = {};

// Asynchronous, so that this process's HTTP client keeps running while a command does: a client
// blocked for longer than the server's keep-alive timeout would send its next request on a
// connection the server has already closed.
async function rlhf(args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await promisify(execFile)(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 120_000, maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { code?: unknown; stderr?: string };
    assert.fail(`rlhf ${args.join(" ")} exited with ${String(err.code)}:\n${err.stderr ?? String(e)}`);
  }
}

async function api<T>(who: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(server!.url + path, {
    method, headers: { authorization: `Bearer ${tokens[who]}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return { status: res.status, body: (path.includes("/export") || !text ? text : JSON.parse(text)) as T };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "feedback-rm-"));
  db = join(dir, "feedback.sqlite");
  for (const [name, role] of [["ada", "admin"], ["lin", "labeler"], ["kim", "labeler"]] as const) {
    tokens[name] = (await rlhf(["feedback", "user", "add", name, "--role", role, "--db", db])).stdout.trim();
  }
  server = await spawnServer(["--db", db]);
});

after(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The records `rm train` should keep: every preference line, and every ranking line that orders
// at least two responses strictly (a ranking whose ties join all responses gives no pair).
const withPairs = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => !("ranking" in l) || ((l.ties as unknown[] | undefined)?.length ?? 0) < (l.responses as unknown[]).length - 1).length;

test("a labeled ranking project exports in both formats, and each export trains a reward model unedited", { timeout: 240_000 }, async () => {
  const { body: project } = await api<{ id: string }>("ada", "POST", "/api/projects", { name: "stories", task: "ranking", overlap: 2 });
  await api("ada", "POST", `/api/projects/${project.id}/items`, imported);
  let answers = 0;
  await Promise.all(["lin", "kim"].map(async (who) => {
    for (;;) {
      const next = await api<NextItem | "">(who, "GET", `/api/projects/${project.id}/next`);
      if (next.status === 204) return;
      const item = next.body as NextItem;
      const external = ITEMS.find((it) => it.best.every((t) => item.responses.some((r) => r.text === t)))!.id;
      await api(who, "POST", `/api/items/${item.id}/answers`, { request_id: `${who}-${external}`, ...judge(who, external, item.responses) });
      answers++;
    }
  }));
  assert.equal(answers, 2 * ITEMS.length);

  for (const aggregate of ["all", "majority"]) {
    for (const format of ["preference", "ranking"]) {
      const viaCli = (await rlhf(["feedback", "export", "--project", "stories", "--format", format, "--aggregate", aggregate, "--db", db])).stdout;
      const viaHttp = (await api<string>("ada", "GET", `/api/projects/${project.id}/export?format=${format}&aggregate=${aggregate}`)).body;
      assert.equal(viaCli, viaHttp, `${format}/${aggregate}: the CLI and the HTTP export differ`);
      writeFileSync(join(dir, `${format}-${aggregate}.jsonl`), viaCli);
    }
  }
  const read = (name: string) => readFileSync(join(dir, name), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  const ranking = read("ranking-all.jsonl");
  // 10 non-skip answers (both skipped gibberish, kim skipped ball); lin's tree ranking ties everything.
  assert.equal(ranking.length, 9);
  assert.equal(withPairs(ranking), 8);
  const chat = ranking.find((l) => l.external_id === "sun")!;
  assert.deepEqual(chat.responses, [...ITEMS[3]!.best].reverse().map((content) => [{ role: "assistant", content }]), "chat prompts get message-list responses");
  assert.ok(ranking.some((l) => Array.isArray(l.ties)), "some exported rankings carry ties");

  const trainArgs = (data: string, out: string) => [
    "rm", "train", "--model", MODEL, "--data", data, "--output", out,
    "--max_steps", "2", "--max_length", "128", "--per_device_train_batch_size", "2", "--logging_steps", "1", "--seed", "0",
  ];
  for (const format of ["preference", "ranking"]) {
    const data = join(dir, `${format}-all.jsonl`);
    const out = join(dir, `rm-${format}`);
    const { stderr } = await rlhf(trainArgs(data, out));
    assert.doesNotMatch(stderr, /dropped/, `${format}: the trainer dropped exported pairs`);
    const m = /rm: (\d+) training records, (\d+) held out/.exec(stderr);
    assert.ok(m, stderr);
    assert.equal(Number(m[1]) + Number(m[2]), withPairs(read(`${format}-all.jsonl`)), `${format}: every record with a pair reaches the trainer`);
    assert.ok(existsSync(join(out, "metrics.jsonl")), `${format}: no metrics.jsonl`);
    const losses = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { loss?: number }).filter((r) => r.loss !== undefined);
    assert.equal(losses.length, 2);
    assert.ok(losses.every((r) => Number.isFinite(r.loss)), JSON.stringify(losses));
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as { num_labels?: number; architectures?: string[] };
    assert.equal(config.num_labels, 1);
    assert.match(config.architectures![0]!, /ForSequenceClassification$/);
    // rm eval reloads the saved model (refusing anything but a num_labels-1 classifier) and reads
    // the majority export of the other format with the same reader.
    const other = format === "preference" ? "ranking" : "preference";
    const evaluated = JSON.parse((await rlhf(["rm", "eval", "--model", out, "--data", join(dir, `${other}-majority.jsonl`), "--json"])).stdout) as { n: number; accuracy: number };
    assert.ok(evaluated.n > 0 && Number.isFinite(evaluated.accuracy), JSON.stringify(evaluated));
  }
});
