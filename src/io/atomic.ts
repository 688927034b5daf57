// Every file the project writes goes through this module (io/writers.test.ts checks that no
// other module writes with node:fs), so every writer fails the same way: an OutputError naming the
// path and the reason, raised before any work where possible (checkWritable) and never leaving a
// partial file under the final name.
//
// Crash-safe writes: a reader sees either the old file (or directory) or the complete new one,
// never a half-written checkpoint. Temp files live beside the target so rename() stays on one
// filesystem, which is what makes it atomic.
import { appendFileSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { appendFile, open, rename, rm, mkdir, stat, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join, resolve } from "node:path";
import { OutputError } from "./errors.ts";

function tempSuffix(): string {
  return `${process.pid}-${randomBytes(4).toString("hex")}`;
}

const REASONS: Record<string, string> = {
  ENOSPC: "no space left on the device", EDQUOT: "disk quota exceeded", EACCES: "permission denied", EPERM: "operation not permitted",
  EROFS: "read-only file system", ENOTDIR: "a parent path is a file, not a directory", EISDIR: "it is a directory", EEXIST: "a file is in the way",
};

/** `err` as an OutputError naming `path`; errors that are not the filesystem's (bugs) pass through. */
function outputError(path: string, err: unknown): unknown {
  if (err instanceof OutputError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code !== "string" || !/^E[A-Z]+$/.test(code)) return err;
  return new OutputError(`cannot write ${path}: ${REASONS[code] ?? (err as Error).message} (${code})`);
}

type Target = "new" | "file" | "special";

/**
 * What writing `path` would do, refusing with an OutputError what cannot work: a directory in the
 * way, a file without write permission (honoured even for root, who could replace it), a parent
 * that is a file. Device files and pipes (/dev/stdout, /dev/full, a FIFO) are written in place.
 */
function target(path: string): Target {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw outputError(path, err);
    for (let dir = dirname(resolve(path)); ; dir = dirname(dir)) {
      try {
        if (!statSync(dir).isDirectory()) throw new OutputError(`cannot write ${path}: ${dir} is not a directory`);
        return "new";
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT" || dir === dirname(dir)) throw outputError(path, e);
      }
    }
  }
  if (st.isDirectory()) throw new OutputError(`cannot write ${path}: it is a directory; give a file path`);
  if (!st.isFile()) return "special";
  if ((st.mode & 0o222) === 0) throw new OutputError(`cannot write ${path}: the file is read-only`);
  return "file";
}

/** Fails now, with the reason, when `path` could not be written later: call before long work that ends in a write. */
export function checkWritable(path: string): void {
  target(path);
}

/** A file's contents: whole, or pieces written in order as they are produced (a file too large to build in memory). */
export type FileContents = Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

async function writeAndSync(path: string, data: FileContents): Promise<void> {
  const fh = await open(path, "wx"); // "wx": never clobber a stranger's file with our temp name
  try {
    if (typeof data === "string" || data instanceof Uint8Array) await fh.writeFile(data);
    else for await (const chunk of data) await fh.write(chunk);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// Persists the rename itself. Directories cannot be fsynced on every platform (Windows), so a
// failure here is not fatal: the data is already synced, only the directory entry may lag.
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, "r");
    try { await fh.sync(); } finally { await fh.close(); }
  } catch { /* best effort, see above */ }
}

/** Writes `data` to `path` through a synced temp file and a rename. Creates parent directories. */
export async function writeFileAtomic(path: string, data: FileContents): Promise<void> {
  if (target(path) === "special") {
    try {
      if (typeof data === "string" || data instanceof Uint8Array) return await writeFile(path, data);
      for await (const chunk of data) await appendFile(path, chunk);
      return;
    } catch (err) { throw outputError(path, err); }
  }
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${tempSuffix()}`);
  try {
    await mkdir(dir, { recursive: true });
    await writeAndSync(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {}); // nothing to remove when the parent is not a directory
    throw outputError(path, err);
  }
  await syncDir(dir);
}

/** writeFileAtomic for small files written from synchronous code (no fsync: logs and generated data, not checkpoints). */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  if (target(path) === "special") {
    try { return writeFileSync(path, data); } catch (err) { throw outputError(path, err); }
  }
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${tempSuffix()}`);
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(tmp, data, { flag: "wx" });
    renameSync(tmp, path);
  } catch (err) {
    try { rmSync(tmp, { force: true }); } catch { /* nothing to remove when the parent is not a directory */ }
    throw outputError(path, err);
  }
}

/** Appends to a log (metrics.jsonl, samples.jsonl); its readers skip a torn last line. */
export async function appendToFile(path: string, text: string): Promise<void> {
  target(path);
  try { await appendFile(path, text); } catch (err) { throw outputError(path, err); }
}

export function appendToFileSync(path: string, text: string): void {
  target(path);
  try { appendFileSync(path, text); } catch (err) { throw outputError(path, err); }
}

async function exists(path: string): Promise<boolean> {
  try { await stat(path); return true; } catch { return false; }
}

/**
 * Writes a whole directory of files (flat: names without slashes) as one unit: everything goes
 * into `DIR.tmp-XXXX`, then is renamed to DIR.
 *
 * If DIR already exists it is replaced whole (files not in `files` disappear), because a
 * checkpoint directory that mixes files of two saves is worse than either save. POSIX cannot
 * swap two directories atomically, so the old one is first renamed to `DIR.old-XXXX` and removed
 * after the new one is in place; a crash in between leaves the old save under that name, never a
 * half-written DIR. A DIR that is not a directory is refused rather than deleted.
 */
export async function writeDirAtomic(dir: string, files: Record<string, Uint8Array | string>): Promise<void> {
  for (const name of Object.keys(files)) {
    if (name === "" || name === "." || name === ".." || /[\\/]/.test(name)) {
      throw new Error(`writeDirAtomic(${dir}): file name ${JSON.stringify(name)} must be a plain name without slashes`);
    }
  }
  const dest = dir.replace(/[\\/]+$/, "");
  const parent = dirname(dest);
  if (await exists(dest) && !(await stat(dest)).isDirectory()) {
    throw new OutputError(`cannot write ${dest}: it exists and is not a directory; refusing to replace it`);
  }
  const suffix = tempSuffix();
  const tmp = `${dest}.tmp-${suffix}`;
  const old = `${dest}.old-${suffix}`;
  try {
    target(tmp); // a parent that is a file, named as such
    await mkdir(parent, { recursive: true });
    await mkdir(tmp);
    for (const [name, data] of Object.entries(files)) await writeAndSync(join(tmp, name), data);
    await syncDir(tmp);
    if (await exists(dest)) await rename(dest, old);
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw outputError(dest, err);
  }
  await syncDir(parent);
  await rm(old, { recursive: true, force: true });
}
