import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeDirAtomic, writeFileAtomic } from "./atomic.ts";
import { tempDir } from "./test-helpers.ts";

test("writeFileAtomic creates parents, replaces the old content and leaves no temp file", async () => {
  const root = await tempDir();
  const path = join(root, "a", "b", "f.json");
  await writeFileAtomic(path, "one");
  await writeFileAtomic(path, new Uint8Array([116, 119, 111]));
  assert.equal(await readFile(path, "utf8"), "two");
  assert.deepEqual(await readdir(join(root, "a", "b")), ["f.json"]);
});

test("writeDirAtomic replaces a directory whole; a failed write leaves the old one intact", async () => {
  const root = await tempDir();
  const dir = join(root, "ckpt");
  await writeDirAtomic(dir, { "a.txt": "1", "b.txt": "2" });
  await writeDirAtomic(`${dir}/`, { "a.txt": "3" });
  assert.deepEqual(await readdir(dir), ["a.txt"]);
  assert.equal(await readFile(join(dir, "a.txt"), "utf8"), "3");

  // A value writeFile rejects makes the write fail after the temp directory exists.
  const bad = { "a.txt": "4", "b.txt": 42 as unknown as string };
  await assert.rejects(writeDirAtomic(dir, bad));
  assert.deepEqual(await readdir(root), ["ckpt"]);
  assert.equal(await readFile(join(dir, "a.txt"), "utf8"), "3");

  await assert.rejects(writeDirAtomic(dir, { "../escape.txt": "x" }), /must be a plain name without slashes/);
  await writeFile(join(root, "file"), "x");
  await assert.rejects(writeDirAtomic(join(root, "file"), { "a.txt": "1" }), /exists and is not a directory; refusing to replace it/);
});
