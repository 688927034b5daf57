// Follows a JSON-lines log that a trainer appends to (metrics.jsonl, samples.jsonl, …): each poll
// reads only the bytes appended since the last one, parses the complete lines and keeps the
// unfinished last line's bytes until its newline arrives (a writer may be mid-append, and a
// multi-byte character may be split across two reads). A file replaced by another (a resumed run
// rewrites metrics.jsonl through a rename: MetricsLog.truncateAfter) or shrunk is read again from
// its start, and `generation` counts those restarts so readers know to drop what they had.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

const NEWLINE = 0x0a;
const CHUNK = 1 << 20;

export class JsonlTail<T> {
  /** Every record parsed so far, in file order. */
  records: T[] = [];
  /** Complete lines that were not JSON or not the expected shape (left out of `records`). */
  skipped = 0;
  /** How many times the file was found replaced or shrunk and read again from its start. */
  generation = 0;
  #offset = 0; // bytes consumed, up to the end of the last read
  #pending: Buffer = Buffer.alloc(0); // the bytes after the last newline
  #inode: number | undefined;

  /** `parse` turns one line's JSON into a record, or undefined to skip it. */
  constructor(readonly path: string, readonly parse: (value: unknown) => T | undefined) {}

  /** Reads what was appended since the last poll; returns the number of new records. */
  poll(): number {
    let fd: number;
    try {
      fd = openSync(this.path, "r");
    } catch {
      if (this.#inode !== undefined) this.#restart(undefined); // the file is gone: so is what it said
      return 0;
    }
    try {
      const { ino, size } = fstatSync(fd);
      if (this.#inode !== undefined && (ino !== this.#inode || size < this.#offset)) this.#restart(ino);
      this.#inode = ino;
      const before = this.records.length;
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(0, size - this.#offset)));
      while (this.#offset < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - this.#offset), this.#offset);
        if (n === 0) break;
        this.#offset += n;
        this.#take(buf.subarray(0, n));
      }
      return this.records.length - before;
    } finally {
      closeSync(fd);
    }
  }

  #take(bytes: Buffer): void {
    const data = this.#pending.length ? Buffer.concat([this.#pending, bytes]) : bytes;
    let start = 0;
    for (let nl = data.indexOf(NEWLINE); nl !== -1; nl = data.indexOf(NEWLINE, start)) {
      this.#line(data.toString("utf8", start, nl));
      start = nl + 1;
    }
    // Copied: `bytes` is the reader's buffer, overwritten by the next read.
    this.#pending = Buffer.from(data.subarray(start));
  }

  #line(line: string): void {
    if (line.trim() === "") return;
    let record: T | undefined;
    try {
      record = this.parse(JSON.parse(line));
    } catch {
      record = undefined;
    }
    if (record === undefined) this.skipped++;
    else this.records.push(record);
  }

  #restart(inode: number | undefined): void {
    this.records = [];
    this.skipped = 0;
    this.#offset = 0;
    this.#pending = Buffer.alloc(0);
    this.#inode = inode;
    this.generation++;
  }
}
