// Shared shape of every `rlhf` subcommand and the flag parsing they use.
import { parseArgs, type ParseArgsConfig } from "node:util";

export interface Command {
  /** One line for `rlhf --help`. */
  summary: string;
  /** Runs with the arguments after the command name; returns the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** An error whose message is shown to the user as is (bad input, missing file), without a stack. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  default?: string | boolean;
  /** Help text; `<NAME>` in it names the value. */
  help: string;
}

/**
 * Parses flags with node:util's parseArgs, printing `usage` + flag help for --help (returns null),
 * and turning unknown flags into a UsageError that names them.
 */
export function parseFlags<F extends Record<string, FlagSpec>>(
  argv: string[],
  usage: string,
  flags: F,
  options: { positionals?: boolean } = {},
): { values: { [K in keyof F]: F[K]["type"] extends "boolean" ? boolean | undefined : F[K]["multiple"] extends true ? string[] | undefined : string | undefined }; positionals: string[] } | null {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(helpText(usage, flags));
    return null;
  }
  const config: ParseArgsConfig = {
    args: argv,
    allowPositionals: options.positionals ?? false,
    strict: true,
    options: Object.fromEntries(
      Object.entries(flags).map(([name, f]) => [
        name,
        // parseArgs rejects keys that are present but undefined.
        Object.fromEntries(Object.entries({ type: f.type, short: f.short, multiple: f.multiple, default: f.default }).filter(([, x]) => x !== undefined)),
      ]),
    ) as unknown as ParseArgsConfig["options"],
  };
  try {
    const parsed = parseArgs(config);
    return parsed as never;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${helpText(usage, flags)}`);
  }
}

export function helpText(usage: string, flags: Record<string, FlagSpec>): string {
  const rows = Object.entries(flags).map(([name, f]) => {
    const value = f.type === "string" ? ` ${valueName(f.help)}` : "";
    const left = `  ${f.short ? `-${f.short}, ` : ""}--${name}${value}`;
    const def = f.default !== undefined && f.default !== "" && f.type === "string" ? ` (default: ${f.default})` : "";
    return `${left.padEnd(34)} ${f.help.replace(/\s*<[A-Z_]+>/g, "")}${def}`;
  });
  return `${usage}\n\nOptions:\n${rows.join("\n")}\n  -h, --help                       show this help\n`;
}

function valueName(help: string): string {
  return /<([A-Z_]+)>/.exec(help)?.[1] ?? "VALUE";
}

/** Number flag with a range check and a message that names the flag. */
export function numberFlag(value: string | undefined, name: string, fallback: number, check?: { min?: number; max?: number; integer?: boolean }): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${value}"`);
  if (check?.integer && !Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got "${value}"`);
  if (check?.min !== undefined && n < check.min) throw new UsageError(`--${name} must be at least ${check.min}, got ${value}`);
  if (check?.max !== undefined && n > check.max) throw new UsageError(`--${name} must be at most ${check.max}, got ${value}`);
  return n;
}

/** For commands that take models: the base of a LoRA adapter directory given as one. */
export const baseFlag = {
  base: { type: "string", help: "base model of a LoRA adapter given as a model (default: its adapter_config.json's base_model_name_or_path) <PATH>" },
} as const;

export function requireFlag(value: string | undefined, name: string): string {
  if (value === undefined || value === "") throw new UsageError(`--${name} is required (see --help)`);
  return value;
}

/** A repeatable flag that must be given at least once. */
export function requireRepeated(values: string[] | undefined, name: string): string[] {
  if (!values || values.length === 0) throw new UsageError(`--${name} is required (see --help)`);
  return values;
}
