// Reading a file the user named: the one place that says which file is missing, unreadable or a
// directory, gunzips .gz files, and drops a UTF-8 byte-order mark (Windows editors write one,
// and JSON.parse refuses it).
import { readFileSync, statSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { InputError } from "./errors.ts";

export class InputFileError extends InputError {}

/** The bytes of a file the user named (`what`: "data file", "prompt file"...), gunzipped when it ends in .gz. */
export function readInputBytes(path: string, what = "file"): Buffer {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    throw new InputFileError(`${what} not found: ${path}`);
  }
  if (isDirectory) throw new InputFileError(`${path} is a directory; expected a ${what}`);
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    throw new InputFileError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  if (!path.endsWith(".gz")) return raw;
  try {
    return gunzipSync(raw);
  } catch (err) {
    throw new InputFileError(`${path}: not a valid gzip file (${(err as Error).message})`);
  }
}

export const stripBom = (text: string) => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

/** A file's text: UTF-8, without a byte-order mark. */
export const readInputText = (path: string, what = "file") => stripBom(readInputBytes(path, what).toString("utf8"));

/** The non-blank lines of a text with their line numbers in the file (1-based), for errors that point at the right line. */
export function numberedLines(text: string): { line: number; text: string }[] {
  return text.split("\n").flatMap((t, i) => (t.trim() === "" ? [] : [{ line: i + 1, text: t }]));
}
