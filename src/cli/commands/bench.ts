import { spawnSync } from "node:child_process";
import type { Command } from "../command.ts";
import { numberFlag, parseFlags, UsageError } from "../command.ts";
import { runStandardBenchmark } from "../../bench/standard.ts";
import { standardWorkloads, workloadNames, type WorkloadName } from "../../bench/workloads.ts";
import { formatProfile, profileKernels } from "../../bench/kernel-profile.ts";
import { kernelThreadCount } from "../../engine/worker-shim.ts";

const usage = `Usage: rlhf bench [--json] [--runs N]
       rlhf bench --profile train|forward|generate [--top N] [--json]

Times the standard benchmark model (GPT-2 style, 3.45M parameters, batch 8 x 128): a full
training step with Adam, a forward pass, and KV-cached generation of 64 tokens for 8 sequences.
npm run bench:compare runs the same model in PyTorch and prints the ratios.

--profile times every kernel of one workload and groups them by shape of work (output size,
reduction, inputs): where the time goes. It runs on one kernel thread (RLHF_THREADS=1), where
dispatch is synchronous and each kernel's own time can be measured.`;

const flags = {
  json: { type: "boolean", help: "print one JSON object" },
  runs: { type: "string", help: "timed repetitions, median reported (default 10); with --profile, traced repetitions (default 3) <N>" },
  profile: { type: "string", help: "profile the kernels of one workload: train, forward or generate <WORKLOAD>" },
  top: { type: "string", default: "25", help: "with --profile: rows of the table <N>" },
} as const;

export const command: Command = {
  summary: "benchmark training, forward and generation speed on the standard model",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    if (v.profile !== undefined) return profile(v.profile, argv, { runs: v.runs, top: v.top, json: v.json ?? false });
    // 10 timed repetitions by default; a profile needs only 3 traced ones.
    const runs = numberFlag(v.runs, "runs", 10, { min: 1, integer: true });
    const result = await runStandardBenchmark({ runs, log: (m) => process.stderr.write(`bench: ${m}…\n`) });
    if (v.json) process.stdout.write(JSON.stringify(result) + "\n");
    else {
      process.stdout.write(
        `train step ${result.train_step_ms} ms · forward ${result.forward_ms} ms · generate 64 tokens × 8 ${result.generate_64_ms} ms · peak RSS ${result.peak_rss_mb} MB\n`,
      );
    }
    return 0;
  },
};

async function profile(workload: string, argv: string[], o: { runs: string | undefined; top: string | undefined; json: boolean }): Promise<number> {
  if (!(workloadNames as string[]).includes(workload)) throw new UsageError(`--profile: expected one of ${workloadNames.join(", ")}, got "${workload}"`);
  const top = numberFlag(o.top, "top", 25, { min: 1, integer: true });
  const repeats = numberFlag(o.runs, "runs", 3, { min: 1, integer: true });
  if (kernelThreadCount() > 1) {
    // The thread count is fixed when the engine loads, so the profile runs in a child process.
    const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, "bench", ...argv], {
      stdio: "inherit",
      env: { ...process.env, RLHF_THREADS: "1" },
    });
    return child.status ?? 1;
  }
  const w = await standardWorkloads();
  const warmup = 2; // the first runs compile every kernel
  process.stderr.write(`bench: profiling ${workload} (${repeats} traced repetitions after ${warmup} warm-up runs)…\n`);
  const result = await profileKernels(w.run[workload as WorkloadName], { repeats, warmup });
  w.dispose();
  if (o.json) process.stdout.write(JSON.stringify({ workload, ...result, groups: result.groups.slice(0, top) }) + "\n");
  else process.stdout.write(formatProfile(result, top) + "\n");
  return 0;
}
