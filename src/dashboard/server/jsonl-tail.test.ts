import assert from "node:assert/strict";
import { appendFileSync, closeSync, mkdtempSync, openSync, renameSync, rmSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { JsonlTail } from "./jsonl-tail.ts";

const dir = mkdtempSync(join(tmpdir(), "jsonl-tail-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `log-${n++}.jsonl`);
const asStep = (v: unknown) => (typeof v === "object" && v !== null && typeof (v as { step?: unknown }).step === "number" ? (v as { step: number }) : undefined);
const line = (step: number, extra = {}) => JSON.stringify({ step, ...extra }) + "\n";

test("a missing file has no records until it appears", () => {
  const path = fresh();
  const tail = new JsonlTail(path, asStep);
  assert.equal(tail.poll(), 0);
  writeFileSync(path, line(1));
  assert.equal(tail.poll(), 1);
  assert.deepEqual(tail.records, [{ step: 1 }]);
  assert.equal(tail.generation, 0);
});

test("an unfinished last line waits for its newline; only appended bytes are read", () => {
  const path = fresh();
  writeFileSync(path, line(1) + '{"step":2,"lo');
  const tail = new JsonlTail(path, asStep);
  assert.equal(tail.poll(), 1);
  appendFileSync(path, 'ss":0.5}\n' + line(3));
  assert.equal(tail.poll(), 2);
  assert.deepEqual(tail.records, [{ step: 1 }, { step: 2, loss: 0.5 }, { step: 3 }]);
  // Bytes already read are not read again: rewriting them in place (same file, same size) changes nothing.
  const fd = openSync(path, "r+");
  writeSync(fd, line(7), 0);
  closeSync(fd);
  assert.equal(tail.poll(), 0);
  assert.deepEqual(tail.records.map((r) => r.step), [1, 2, 3]);
  assert.equal(tail.generation, 0);
});

test("a multi-byte character split across two appends is decoded whole", () => {
  const path = fresh();
  const bytes = Buffer.from(JSON.stringify({ step: 1, prompt: "naïve — 猫" }) + "\n");
  const cut = bytes.indexOf(Buffer.from("猫")) + 1; // inside the 3-byte character
  writeFileSync(path, bytes.subarray(0, cut));
  const tail = new JsonlTail(path, (v) => v as { prompt: string });
  assert.equal(tail.poll(), 0);
  appendFileSync(path, bytes.subarray(cut));
  assert.equal(tail.poll(), 1);
  assert.equal(tail.records[0]!.prompt, "naïve — 猫");
});

test("lines that are not JSON or not the expected shape are skipped and counted; blank lines ignored", () => {
  const path = fresh();
  writeFileSync(path, line(1) + "not json\n\n" + JSON.stringify({ loss: 1 }) + "\n" + line(2));
  const tail = new JsonlTail(path, asStep);
  tail.poll();
  assert.deepEqual(tail.records.map((r) => r.step), [1, 2]);
  assert.equal(tail.skipped, 2);
});

test("a file replaced through a rename (a resumed run's rewrite) is read again from its start", () => {
  const path = fresh();
  writeFileSync(path, line(1) + line(2) + line(3));
  const tail = new JsonlTail(path, asStep);
  tail.poll();
  writeFileSync(path + ".tmp", line(1) + line(2) + line(3) + line(4)); // larger, so only the inode tells
  renameSync(path + ".tmp", path);
  assert.equal(tail.poll(), 4);
  assert.deepEqual(tail.records.map((r) => r.step), [1, 2, 3, 4]);
  assert.equal(tail.generation, 1);
});

test("a file cut shorter in place, or deleted, starts over", () => {
  const path = fresh();
  writeFileSync(path, line(1) + line(2));
  const tail = new JsonlTail(path, asStep);
  tail.poll();
  truncateSync(path, 0);
  appendFileSync(path, line(5));
  tail.poll();
  assert.deepEqual(tail.records.map((r) => r.step), [5]);
  assert.equal(tail.generation, 1);
  rmSync(path);
  tail.poll();
  assert.deepEqual(tail.records, []);
  assert.equal(tail.generation, 2);
});

test("a log larger than one read chunk is read whole, line boundaries across chunks included", () => {
  const path = fresh();
  const pad = "x".repeat(1000);
  writeFileSync(path, Array.from({ length: 3000 }, (_, i) => line(i, { pad })).join("")); // ~3 MiB
  const tail = new JsonlTail(path, asStep);
  assert.equal(tail.poll(), 3000);
  assert.deepEqual(tail.records.map((r) => r.step), Array.from({ length: 3000 }, (_, i) => i));
});
