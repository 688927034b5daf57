// Crash-safe writes: a reader sees either the old file (or directory) or the complete new one,
// never a half-written checkpoint. Temp files live beside the target so rename() stays on one
// filesystem, which is what makes it atomic.
import { open, rename, rm, mkdir, stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";

function tempSuffix(): string {
  return `${process.pid}-${randomBytes(4).toString("hex")}`;
}

async function writeAndSync(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(path, "wx"); // "wx": never clobber a stranger's file with our temp name
  try {
    await fh.writeFile(data);
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
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.tmp-${tempSuffix()}`);
  try {
    await writeAndSync(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
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
  const target = dir.replace(/[\\/]+$/, "");
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  if (await exists(target) && !(await stat(target)).isDirectory()) {
    throw new Error(`writeDirAtomic: ${target} exists and is not a directory; refusing to replace it`);
  }
  const suffix = tempSuffix();
  const tmp = `${target}.tmp-${suffix}`;
  const old = `${target}.old-${suffix}`;
  try {
    await mkdir(tmp);
    for (const [name, data] of Object.entries(files)) await writeAndSync(join(tmp, name), data);
    await syncDir(tmp);
    if (await exists(target)) await rename(target, old);
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  await syncDir(parent);
  await rm(old, { recursive: true, force: true });
}
