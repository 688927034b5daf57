// Every file the project writes surfaces a failed write (issue 17): an OutputError (one line,
// exit 1 from the CLI) naming the path and the reason, and never a partial or clobbered file under
// the final name. The writers all go through io/atomic.ts; the first test keeps it that way, the
// others fail each writer in the ways a user's path can: a directory in the way, a parent that is
// a file, a read-only file, a full disk (/dev/full answers every write with ENOSPC).
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { writeJsonLines } from "../data/convert.ts";
import { writeTokenizerFiles } from "../tokenizers/tokenizer.ts";
import { writeRefCache } from "../train/reference-cache.ts";
import { MetricsLog } from "../train/metrics-log.ts";
import { appendToFile, appendToFileSync, writeDirAtomic, writeFileAtomic, writeFileAtomicSync } from "./atomic.ts";
import { OutputError } from "./errors.ts";
import { writeHfDirectory } from "./hf-dir.ts";
import { writeSafetensors } from "./safetensors.ts";
import { tempDir } from "./test-helpers.ts";

const SRC = fileURLToPath(new URL("../", import.meta.url));
const WRITE_CALLS = /\b(writeFile|writeFileSync|appendFile|appendFileSync|createWriteStream|copyFile|copyFileSync|writeSync|cpSync)\b/;

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.startsWith("test-")) out.push(path);
  }
  return out;
}

test("no module but io/atomic.ts writes files with node:fs", () => {
  const offenders: string[] = [];
  for (const file of sources(SRC)) {
    const rel = relative(SRC, file);
    if (rel === join("io", "atomic.ts")) continue;
    const text = readFileSync(file, "utf8");
    if (/import\s+(\*\s+as\s+)?\w+\s+from\s+"node:fs(\/promises)?"/.test(text)) offenders.push(`${rel}: imports node:fs whole`);
    for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*"node:fs(?:\/promises)?"/g)) {
      const bad = m[1]!.split(",").map((s) => s.trim()).filter((s) => WRITE_CALLS.test(s));
      if (bad.length) offenders.push(`${rel}: ${bad.join(", ")}`);
    }
  }
  assert.deepEqual(offenders, [], "write through io/atomic.ts (writeFileAtomic, appendToFile...) so failures are reported alike");
});

type Writer = (path: string) => Promise<unknown> | unknown;
const tensors = new Map([["w", { shape: [2], data: new Float32Array([1, 2]) }]]);

// Writers of one file at `path`.
const FILE_WRITERS: Record<string, Writer> = {
  writeFileAtomic: (p) => writeFileAtomic(p, "new"),
  writeFileAtomicSync: (p) => writeFileAtomicSync(p, "new"),
  appendToFile: (p) => appendToFile(p, "new\n"),
  appendToFileSync: (p) => appendToFileSync(p, "new\n"),
  "writeSafetensors (weights)": (p) => writeSafetensors(p, tensors),
  "writeJsonLines (rlhf data convert)": (p) => writeJsonLines(p, [{ chosen: "a", rejected: "b" }]),
  "writeRefCache (DPO/KTO reference log-probs)": (p) => writeRefCache(p, "f", "ref", { train: [[1]], eval: [] }),
};
// Writers of a directory at `path` (checkpoints, saved models and tokenizers), and of DIR/metrics.jsonl.
const DIR_WRITERS: Record<string, Writer> = {
  "writeDirAtomic": (p) => writeDirAtomic(p, { "a.txt": "new" }),
  "writeHfDirectory (checkpoints, saved models)": (p) => writeHfDirectory(p, { model_type: "llama" }, tensors),
  "writeTokenizerFiles": (p) => writeTokenizerFiles(p, { model: {} }, {}),
};

async function refused(write: Writer, path: string, reason: RegExp, name: string): Promise<void> {
  await assert.rejects(async () => write(path), (e: Error) => {
    assert.ok(e instanceof OutputError, `${name}: ${e.stack}`);
    assert.ok(e.message.includes(path.replace(/\/+$/, "")) || e.message.includes(path), `${name} names the path: ${e.message}`);
    assert.match(e.message, reason, name);
    assert.doesNotMatch(e.message, /\n/, `${name}: one line`);
    return true;
  });
}

test("every file writer refuses a directory in the way, a parent that is a file, a read-only file and a full disk, leaving the old content", async () => {
  const root = await tempDir();
  writeFileSync(join(root, "a-file"), "x");
  for (const [name, write] of Object.entries(FILE_WRITERS)) {
    const dir = join(root, name.split(" ")[0]!);
    mkdirSync(join(dir, "a-dir"), { recursive: true });
    await refused(write, join(dir, "a-dir"), /it is a directory/, name);
    await refused(write, join(root, "a-file", "out.jsonl"), /not a directory/, name);
    const readOnly = join(dir, "read-only");
    writeFileSync(readOnly, "old");
    chmodSync(readOnly, 0o444);
    await refused(write, readOnly, /read-only/, name);
    assert.equal(readFileSync(readOnly, "utf8"), "old", `${name} left the read-only file alone`);
    await refused(write, "/dev/full", /no space left on the device \(ENOSPC\)/, name);
    assert.deepEqual(readdirSync(dir).sort(), ["a-dir", "read-only"], `${name}: no temp file left behind`);
  }
});

test("every directory writer refuses a file in the way and a parent that is a file, leaving the file", async () => {
  const root = await tempDir();
  for (const [name, write] of Object.entries(DIR_WRITERS)) {
    const dir = join(root, name.split(" ")[0]!);
    mkdirSync(dir);
    writeFileSync(join(dir, "a-file"), "old");
    // writeTokenizerFiles writes two files into the directory: the first meets the file.
    await refused(write, join(dir, "a-file"), /not a directory/, name);
    assert.equal(readFileSync(join(dir, "a-file"), "utf8"), "old");
    await refused(write, join(dir, "a-file", "ckpt"), /not a directory/, name);
    assert.deepEqual(readdirSync(dir), ["a-file"], `${name}: no temp directory left behind`);
  }
});

test("MetricsLog: a metrics.jsonl that cannot be appended to or rewritten is an OutputError naming it", async () => {
  const root = await tempDir();
  const log = new MetricsLog(root);
  mkdirSync(join(root, "metrics.jsonl"));
  await refused(() => log.append({ step: 1, loss: 0.5 }), join(root, "metrics.jsonl"), /it is a directory/, "MetricsLog.append");
  assert.ok(existsSync(join(root, "metrics.jsonl")));
});
