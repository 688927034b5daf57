// `rlhf loop run|status|resume`: the iterated RLHF loop (src/loop): rounds of sampling, labeling,
// reward-model training, DPO and evaluation in one run directory, resumable stage by stage.
import { existsSync } from "node:fs";
import { writeFileAtomic } from "../../io/atomic.ts";
import type { Command } from "../command.ts";
import { parseFlags, requireFlag, UsageError } from "../command.ts";
import { readLoopConfig, type LoopConfig } from "../../loop/config.ts";
import { publishPolicy, runRound, summary, type RoundCommands } from "../../loop/round.ts";
import { configCopy, finishedRounds, isDone, roundDir, roundsFile, STAGES } from "../../loop/run-dir.ts";
import { API_KEY_ENV, URL_ENV } from "../../loop/feedback-labeler.ts";

const usage = `Usage: rlhf loop run CONFIG.yaml --output DIR
       rlhf loop resume DIR
       rlhf loop status DIR

Iterated RLHF: each round samples K completions per training prompt from the current policy,
pairs them off, has the labeler choose (a reward module, or people through the feedback server's
HTTP API; with label_budget, only the comparisons the last reward model is least sure of, the rest
labeled by \`rest\` or dropped), retrains the reward model on every label so far (rlhf rm train),
optimises the round's policy from the last one with the SFT model as reference (policy_trainer:
rlhf dpo on the labels, or rlhf ppo / rlhf online-dpo with the new reward model), and evaluates the new
policy on the held-out prompts (reward, KL and win rate against the SFT model, win rate against the
previous round, and the gold function's score when one is set). DIR/round-N holds each round; each
stage writes a done-marker after its outputs, so \`resume\` (after a kill or a failure) skips finished
stages and resumes an interrupted trainer from its checkpoint. DIR/rounds.jsonl has one line per
round, DIR/policy the last round's policy. The people labeler's admin token is labeler.api_key or
the ${API_KEY_ENV} environment variable; ${URL_ENV} overrides labeler.url. Config fields: examples/loop/config.yaml.`;

const flags = { output: { type: "string", help: "run directory <DIR>" } } as const;

export const command: Command = {
  summary: "iterated RLHF: sample, label (people, reward), reward model, DPO, evaluate, per round; resumable",
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === "--help" || sub === "-h") {
      process.stdout.write(usage + "\n");
      return sub ? 0 : 2;
    }
    const parsed = parseFlags(rest, usage, flags, { positionals: true });
    if (!parsed) return 0;
    const [target, ...extra] = parsed.positionals;
    if (target === undefined || extra.length > 0) throw new UsageError(`rlhf loop ${sub} takes one ${sub === "run" ? "CONFIG file" : "run DIR"}\n\n${usage}`);
    if (sub === "run") {
      const out = requireFlag(parsed.values.output, "output");
      if (existsSync(configCopy(out))) throw new UsageError(`${out} already holds a loop run; continue it with \`rlhf loop resume ${out}\` or choose another --output`);
      const config = readLoopConfig(target);
      await writeFileAtomic(configCopy(out), JSON.stringify(config, null, 2) + "\n");
      return runLoop(config, out);
    }
    if (sub === "resume") return runLoop(readRunConfig(target), target);
    if (sub === "status") {
      process.stdout.write(statusText(readRunConfig(target), target));
      return 0;
    }
    throw new UsageError(`unknown subcommand "${sub}" (run, resume, status)\n\n${usage}`);
  },
};

function readRunConfig(out: string): LoopConfig {
  if (!existsSync(configCopy(out))) throw new UsageError(`${out} is not a loop run directory (no ${configCopy(out)}); start one with \`rlhf loop run CONFIG --output ${out}\``);
  return readLoopConfig(configCopy(out));
}

// The trainers and the judge, run in this process through their commands (loaded when first used).
const commands: RoundCommands = {
  rm: async (argv) => (await import("./rm.ts")).command.run(argv),
  policy: {
    dpo: async (argv) => (await import("./dpo.ts")).command.run(argv),
    ppo: async (argv) => (await import("./ppo.ts")).command.run(argv),
    "online-dpo": async (argv) => (await import("./online-dpo.ts")).command.run(argv),
  },
  judge: async (argv) => (await import("./judge.ts")).command.run(argv),
};

async function runLoop(config: LoopConfig, out: string): Promise<number> {
  for (let r = 0; r < config.rounds; r++) await runRound(config, out, r, commands);
  const policy = await publishPolicy(config, out);
  process.stderr.write(`loop: ${config.rounds} rounds done; the last policy in ${policy}, one line per round in ${roundsFile(out)}\n`);
  process.stdout.write(statusText(config, out));
  return 0;
}

/** The per-round table, and where an unfinished round stands. */
export function statusText(config: LoopConfig, out: string): string {
  const rounds = finishedRounds(out);
  const gold = rounds.some((r) => r.gold !== undefined);
  const head = ["round", "labels", "total", "rm_acc", ...(gold ? ["rm_gold_acc"] : []), "reward", "kl", "win_rate", "vs_prev", ...(gold ? ["gold", "gold_ref"] : [])];
  const fmt = (x: number | undefined, digits = 3) => (x === undefined ? "" : x.toFixed(digits));
  const rows = rounds.map((r) => [String(r.round), String(r.labels), String(r.labels_total), fmt(r.rm_accuracy), ...(gold ? [fmt(r.rm_gold_accuracy)] : []), fmt(r.reward), fmt(r.kl), fmt(r.win_rate), fmt(r.win_rate_vs_previous), ...(gold ? [fmt(r.gold, 4), fmt(r.gold_reference, 4)] : [])]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(" | ")} |`;
  const lines = [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)];
  const next = rounds.length;
  if (next < config.rounds) {
    const done = existsSync(roundDir(out, next)) ? STAGES.filter((s) => isDone(out, next, s)) : [];
    lines.push("", `round ${next} of ${config.rounds}: ${done.length === 0 ? "not started" : `done: ${done.join(", ")}; next: ${STAGES[done.length]}`}`);
  } else lines.push("", `all ${config.rounds} rounds done${rounds.length > 0 ? `; last: ${summary(rounds.at(-1)!)}` : ""}`);
  return lines.join("\n") + "\n";
}
