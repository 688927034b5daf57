import { existsSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "../command.ts";
import { numberFlag, parseFlags, UsageError } from "../command.ts";
import { runDemo } from "../../demo/pipeline.ts";

const usage = `Usage: rlhf demo [--seed S] [--quick] [--output DIR] [--json]

Runs the whole RLHF pipeline offline on a built-in task: a synthetic letter language with a hidden
"gold" preference (letters a, e, o good; x, z bad). Pretrains a tiny Llama, fine-tunes it on
demonstrations (SFT), samples comparisons and labels them with simulated noisy labelers, trains a
reward model, then optimises with PPO (KL to the SFT model) and, beside it, DPO on the same
comparisons. Every stage runs the trainer its command runs (rlhf sft, rm train, ppo, dpo), with
TRL's defaults except where the tiny task needs others. Prints the reward model's accuracy and, for
the reference, PPO and DPO policies, the gold reward and KL to the reference on held-out prompts.
With --output, DIR keeps each stage's data (JSON lines), checkpoints, metrics.jsonl and model.`;

const flags = {
  seed: { type: "string", default: "0", help: "random seed <S>" },
  quick: { type: "boolean", help: "a smaller run (about a quarter of the steps)" },
  output: { type: "string", help: "keep every stage's data, metrics and models in this new or empty directory (default: a temporary one, removed) <DIR>" },
  json: { type: "boolean", help: "print the report as one JSON object" },
} as const;

export const command: Command = {
  summary: "run the whole pipeline (pretrain, SFT, comparisons, RM, PPO, DPO) on a built-in task",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const seed = numberFlag(parsed.values.seed, "seed", 0, { integer: true, min: 0 });
    const output = parsed.values.output;
    if (output !== undefined && existsSync(output) && readdirSync(output).length > 0) throw new UsageError(`--output ${output} is not empty; give a new or empty directory`);
    const outputDir = output ?? (await mkdtemp(join(tmpdir(), "rlhf-demo-")));
    await mkdir(outputDir, { recursive: true });
    const started = performance.now();
    let report;
    try {
      report = await runDemo({ seed, quick: parsed.values.quick ?? false, outputDir, log: (line) => process.stderr.write(line + "\n") });
    } finally {
      if (output === undefined) await rm(outputDir, { recursive: true, force: true });
    }
    const total = Math.round((performance.now() - started) / 1000);
    if (parsed.values.json) {
      process.stdout.write(JSON.stringify({ ...report, total_seconds: total }) + "\n");
      return 0;
    }
    const rows = report.policies.map((p) => `| ${p.name.padEnd(16)} | ${p.gold.toFixed(3).padStart(11)} | ${p.kl.toFixed(3).padStart(14)} | ${p.length.toFixed(1).padStart(15)} |`);
    process.stdout.write(
      [
        "",
        `reward model accuracy on held-out pairs (gold labels): ${report.rmAccuracy.toFixed(3)} (n = ${report.rmPairs})`,
        "",
        "| policy           | gold reward | KL(π ‖ π_ref) | response length |",
        "|------------------|-------------|----------------|-----------------|",
        ...rows,
        "",
        `stages (s): ${Object.entries(report.seconds).map(([k, v]) => `${k} ${v}`).join(", ")}; total ${total} s`,
        ...(output !== undefined ? [`every stage's data, metrics.jsonl and model: ${output}`] : []),
        "",
      ].join("\n"),
    );
    return 0;
  },
};
