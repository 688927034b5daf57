// A model's config.json given on the command line (`--config`): a path, or the name of one of the
// configs shipped in the repository's configs/ folder (`smollm2-135m`). Every failure is one line
// that names the file, and for a bad field the field.
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { parseConfig, type ModelConfig } from "../models/config.ts";
import { readInputText } from "../io/text-file.ts";
import { UsageError } from "./command.ts";

/** The repository's configs/ folder. */
export const shippedConfigsDir = fileURLToPath(new URL("../../configs/", import.meta.url));

export function shippedConfigNames(): string[] {
  return readdirSync(shippedConfigsDir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();
}

/** `arg` itself when it exists, else the shipped config of that name. */
export function resolveConfigPath(arg: string): string {
  if (existsSync(arg)) return arg;
  const shipped = join(shippedConfigsDir, `${arg}.json`);
  if (!arg.includes("/") && !arg.endsWith(".json") && existsSync(shipped)) return shipped;
  throw new UsageError(`config not found: ${arg} (a config.json path, or one of the shipped configs: ${shippedConfigNames().join(", ")})`);
}

export async function readModelConfig(arg: string): Promise<{ path: string; config: ModelConfig }> {
  const path = resolveConfigPath(arg);
  const text = readInputText(path, "config.json file");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  try {
    return { path, config: parseConfig(json, path) };
  } catch (err) {
    // parseConfig's messages are already "<file>: <field> <what is wrong>".
    throw new UsageError((err as Error).message);
  }
}
