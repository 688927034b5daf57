import type { Command } from "../command.ts";
import { numberFlag, parseFlags } from "../command.ts";
import { runStandardBenchmark } from "../../bench/standard.ts";

const usage = `Usage: rlhf bench [--json] [--runs N]

Times the standard benchmark model (GPT-2 style, 3.45M parameters, batch 8 x 128): a full
training step with Adam, a forward pass, and KV-cached generation of 64 tokens for 8 sequences.
npm run bench:compare runs the same model in PyTorch and prints the ratios.`;

const flags = {
  json: { type: "boolean", help: "print one JSON object" },
  runs: { type: "string", default: "10", help: "timed repetitions (median reported) <N>" },
} as const;

export const command: Command = {
  summary: "benchmark training, forward and generation speed on the standard model",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const runs = numberFlag(parsed.values.runs, "runs", 10, { min: 1, integer: true });
    const result = await runStandardBenchmark({ runs, log: (m) => process.stderr.write(`bench: ${m}…\n`) });
    if (parsed.values.json) process.stdout.write(JSON.stringify(result) + "\n");
    else {
      process.stdout.write(
        `train step ${result.train_step_ms} ms · forward ${result.forward_ms} ms · generate 64 tokens × 8 ${result.generate_64_ms} ms · peak RSS ${result.peak_rss_mb} MB\n`,
      );
    }
    return 0;
  },
};
