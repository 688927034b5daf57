// `rlhf` command-line entry: each subcommand is a module in ./commands exporting a Command, loaded
// only when asked for, so `rlhf feedback serve` never pays for the tensor engine and vice versa.
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { UsageError, type Command } from "./command.ts";
import { isEngineOutOfMemory } from "../engine/out-of-memory.ts";
import { InputError } from "../io/errors.ts";

const commandsDir = fileURLToPath(new URL("./commands/", import.meta.url));

function commandNames(): string[] {
  return readdirSync(commandsDir)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function loadCommand(name: string): Promise<Command> {
  const mod = (await import(new URL(`./commands/${name}.ts`, import.meta.url).href)) as { command: Command };
  return mod.command;
}

async function printHelp(): Promise<void> {
  const lines = ["rlhf — RLHF in TypeScript: SFT, reward models, PPO, DPO, GRPO/RLOO, human feedback", "", "Usage: rlhf <command> [options]   (rlhf <command> --help for its options)", "", "Commands:"];
  for (const name of commandNames()) lines.push(`  ${name.padEnd(10)} ${(await loadCommand(name)).summary}`);
  process.stdout.write(lines.join("\n") + "\n");
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    await printHelp();
    process.exitCode = name ? 0 : 1;
    return;
  }
  if (!commandNames().includes(name)) {
    process.stderr.write(`rlhf: unknown command "${name}" (known: ${commandNames().join(", ")})\n`);
    process.exitCode = 2;
    return;
  }
  try {
    process.exitCode = await (await loadCommand(name)).run(rest);
  } catch (err) {
    process.stderr.write(`rlhf ${name}: ${describeFailure(err)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
  // Kernel worker threads are unref'd, but pending handles (servers excepted) should not keep us alive.
}

/**
 * One line for the user: the message of an expected failure (bad input, a missing file, a plan
 * that does not fit), and for anything else the message with a pointer to its stack, which
 * RLHF_DEBUG=1 prints.
 */
export function describeFailure(err: unknown): string {
  const e = err instanceof Error ? err : new Error(String(err));
  if (process.env.RLHF_DEBUG === "1") return e.stack ?? e.message;
  const expected = e instanceof UsageError || e instanceof InputError || (e as NodeJS.ErrnoException).code === "ENOENT";
  if (expected) return e.message;
  if (isEngineOutOfMemory(e)) {
    return "the tensor engine ran out of its 4 GiB of memory (jax-js's one 32-bit wasm heap); lower the batch size or sequence length, or use a smaller model (RLHF_DEBUG=1 shows where)";
  }
  return `${e.message} (an internal error; RLHF_DEBUG=1 shows where)`;
}
