// `rlhf dashboard RUN_DIR…`: a web page that follows training runs as they write (src/dashboard).
import { existsSync, statSync } from "node:fs";
import type { Command } from "../command.ts";
import { numberFlag, parseFlags, UsageError } from "../command.ts";

const usage = `Usage: rlhf dashboard RUN_DIR… [--port 8081] [--host 127.0.0.1]

Serves a read-only web page over the run directories the trainers write (rlhf ppo, grpo, rloo,
online-dpo, dpo, kto, sft, rm train): any metric of metrics.jsonl against steps, the runs overlaid,
the reward-hacking monitors' events (events.jsonl) marked on the curves; the samples (samples.jsonl),
searchable; the reward–KL plane with one point per run (its last logged steps) or per evaluation
(\`rlhf eval --json > DIR/eval.json\`, or DIR/checkpoint-N/eval.json) and its upper frontier; a loop's
rounds (rounds.jsonl). The page follows the files while runs write them.`;

const flags = {
  port: { type: "string", default: "8081", help: "port to listen on; 0 picks a free one <P>" },
  host: { type: "string", default: "127.0.0.1", help: "address to listen on (0.0.0.0: every interface) <ADDRESS>" },
} as const;

export const command: Command = {
  summary: "web page of training runs: metrics overlaid, monitor events, samples, reward–KL plane, rounds",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags, { positionals: true });
    if (!parsed) return 0;
    const dirs = parsed.positionals;
    if (dirs.length === 0) throw new UsageError("give at least one RUN_DIR (see --help)");
    for (const dir of dirs) {
      if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`RUN_DIR ${dir} is not a directory; expected a run's output directory`);
    }
    const port = numberFlag(parsed.values.port, "port", 8081, { min: 0, max: 65535, integer: true });
    const { serveDashboard } = await import("../../dashboard/server/serve.ts");
    return serveDashboard(dirs, parsed.values.host ?? "127.0.0.1", port);
  },
};
