import { spawnSync } from "node:child_process";
import type { Command } from "../command.ts";
import { numberFlag, parseFlags, UsageError } from "../command.ts";
import { runStandardBenchmark } from "../../bench/standard.ts";
import { modelWorkloads, realSizeSpec, standardWorkloads, workloadNames, type WorkloadName } from "../../bench/workloads.ts";
import { FULL_WORKLOADS, parameterCount, PEFT_WORKLOADS, ROLLOUT_WORKLOADS, runModelBenchmark, type ModelBenchResult } from "../../bench/model-bench.ts";
import { ROLLOUT_DTYPES, type RolloutDtype, type RolloutEngineName } from "../../generation/rollout-engine.ts";
import { rolloutEngineFlag } from "./eval.ts";
import { formatProfile, profileKernels } from "../../bench/kernel-profile.ts";
import { kernelThreadCount } from "../../engine/worker-shim.ts";
import { readModelConfig } from "../config-file.ts";

const usage = `Usage: rlhf bench [--json] [--runs N] [--rollout_engine jax-js|llama.cpp [--rollout_dtype f32|f16|q8_0]]
       rlhf bench --config CONFIG.json [--use_peft | --rollout_engine jax-js|llama.cpp [--rollout_dtype T]] [--json] [--runs N]
       rlhf bench --profile train|forward|generate|dpo [--config CONFIG.json] [--top N] [--json]

Times the standard benchmark model (GPT-2 style, 3.45M parameters, batch 8 x 128): a full
training step with Adam, a forward pass, and KV-cached generation of 64 tokens for 8 sequences.
npm run bench:compare runs the same model in PyTorch and prints the ratios.

--config times a real model's shape with random weights (a config.json, or a shipped config's name:
smollm2-135m, gpt2-124m, qwen2.5-0.5b): a forward pass over 1 x 512 tokens, an SFT training step on
1 x 512 (AdamW, gradient clipping at 1), and KV-cached generation of 64 tokens for 8 sequences after
16-token prompts; medians of 3 runs after 1 warm-up. It reports ms, tokens/s, the engine memory each
workload needed and the process's peak RSS. A workload that does not fit the engine's 4 GiB is named
on stderr and null in the result; the others still run, and the exit status is 1.
npm run bench:compare -- --config NAME runs the same shape in PyTorch.

--use_peft (with --config) times a LoRA DPO step instead: one pair, a chosen and a rejected row of a
128-token prompt + a 128-token completion, the sigmoid loss at beta 0.1, AdamW (lr 1e-6, clipping
at 1) on an adapter with TRL's defaults (r 16, alpha 32, PEFT's target modules for the model type:
q_proj,v_proj for Llama and Qwen2, c_attn for GPT-2), its dropout off, on the frozen weights; the
reference log-probs (the adapter off) are computed once before the timing, as rlhf dpo does.
npm run bench:compare -- --config NAME --use_peft runs the same step in PyTorch.

--rollout_engine llama.cpp times the generation workload alone (the same weights, prompt ids and
lengths, greedy) on llama.cpp: the weights are exported as a GGUF once before the timing (f32, or
--rollout_dtype f16 / q8_0 as the trainers' --rollout_dtype exports them), and llama.cpp decodes with
its default F16 KV cache, as the trainers' rollouts do, on as many threads as jax-js has
(RLHF_THREADS). Its memory lies outside the engine's 4 GiB, in the peak RSS.
npm run bench:compare -- [--config NAME] --rollout_engine llama.cpp sets it against PyTorch.

--profile times every kernel of one workload and groups them by shape of work (output size,
reduction, inputs): where the time goes. It runs on one kernel thread (RLHF_THREADS=1), where
dispatch is synchronous and each kernel's own time can be measured.`;

const flags = {
  json: { type: "boolean", help: "print one JSON object" },
  config: { type: "string", help: "time (or profile) a real model's shape: its config.json or a shipped name <CONFIG>" },
  runs: { type: "string", help: "timed repetitions, median reported (default 10, with --config 3); with --profile, traced repetitions (default 3) <N>" },
  use_peft: { type: "boolean", help: "with --config: time a LoRA DPO step (TRL's LoRA defaults) instead" },
  rollout_engine: { type: "string", help: "where generation runs: jax-js (default) or llama.cpp, which times generation alone <ENGINE>" },
  rollout_dtype: { type: "string", help: "with --rollout_engine llama.cpp: the weights it generates with, f32 (default), f16 or q8_0 <TYPE>" },
  profile: { type: "string", help: "profile the kernels of one workload: train, forward, generate or dpo (LoRA DPO) <WORKLOAD>" },
  top: { type: "string", default: "25", help: "with --profile: rows of the table <N>" },
} as const;

export const command: Command = {
  summary: "benchmark training, forward and generation speed (the standard model, or a real config's shape)",
  async run(argv) {
    const parsed = parseFlags(argv, usage, flags);
    if (!parsed) return 0;
    const v = parsed.values;
    if (v.profile !== undefined) return profile(v.profile, argv, { config: v.config, runs: v.runs, top: v.top, json: v.json ?? false });
    if (v.use_peft && v.config === undefined) throw new UsageError("--use_peft: needs --config (the LoRA DPO step is timed at a real model's shape)");
    const rolloutEngine = rolloutEngineFlag(v.rollout_engine);
    if (v.use_peft && rolloutEngine !== "jax-js") throw new UsageError("--rollout_engine: times generation, --use_peft a LoRA DPO step; give one of them");
    const rolloutDtype = rolloutDtypeFlag(v.rollout_dtype, rolloutEngine);
    if (v.config !== undefined) return benchModel(v.config, { runs: v.runs, json: v.json ?? false, usePeft: v.use_peft ?? false, rolloutEngine, rolloutDtype });
    // 10 timed repetitions by default; a profile needs only 3 traced ones.
    const runs = numberFlag(v.runs, "runs", 10, { min: 1, integer: true });
    const result = await runStandardBenchmark({ runs, rolloutEngine, rolloutDtype, log: (m) => process.stderr.write(`bench: ${m}…\n`) });
    if (v.json) process.stdout.write(JSON.stringify(result) + "\n");
    else {
      const timed = rolloutEngine === "jax-js" ? `train step ${result.train_step_ms} ms · forward ${result.forward_ms} ms · ` : "";
      process.stdout.write(`${timed}generate 64 tokens × 8 (${rolloutEngine}${rolloutDtype === "f32" ? "" : `, ${rolloutDtype}`}) ${result.generate_64_ms} ms · peak RSS ${result.peak_rss_mb} MB\n`);
    }
    return 0;
  },
};

/** `--rollout_dtype`'s value: f32 when absent; another only with llama.cpp. */
function rolloutDtypeFlag(value: string | undefined, engine: RolloutEngineName): RolloutDtype {
  if (value === undefined) return "f32";
  if (!(ROLLOUT_DTYPES as readonly string[]).includes(value)) throw new UsageError(`--rollout_dtype: expected one of ${ROLLOUT_DTYPES.join(", ")}, got "${value}"`);
  if (value !== "f32" && engine !== "llama.cpp") throw new UsageError(`--rollout_dtype ${value}: needs --rollout_engine llama.cpp (jax-js generates in f32)`);
  return value as RolloutDtype;
}

async function benchModel(configArg: string, o: { runs: string | undefined; json: boolean; usePeft: boolean; rolloutEngine: RolloutEngineName; rolloutDtype: RolloutDtype }): Promise<number> {
  const { path, config } = await readModelConfig(configArg);
  const runs = numberFlag(o.runs, "runs", 3, { min: 1, integer: true });
  const workloads = o.usePeft ? PEFT_WORKLOADS : o.rolloutEngine === "llama.cpp" ? ROLLOUT_WORKLOADS : FULL_WORKLOADS;
  const result = await runModelBenchmark(config, { source: path, runs, workloads, rolloutEngine: o.rolloutEngine, rolloutDtype: o.rolloutDtype, log: (m) => process.stderr.write(`bench: ${m}…\n`) });
  for (const line of Object.values(result.did_not_fit)) process.stderr.write(`rlhf bench: ${line}\n`);
  process.stdout.write(o.json ? JSON.stringify(result) + "\n" : formatModelResult(result));
  return Object.keys(result.did_not_fit).length > 0 ? 1 : 0;
}

function formatModelResult(r: ModelBenchResult): string {
  const row = (label: string, ms: number | null, perSecond: number | null, peak: number | null) =>
    ms === null ? `${label}: did not fit in the engine's 4 GiB` : `${label}: ${ms} ms, ${perSecond} tokens/s${peak === null ? "" : `, engine peak ${peak} MiB`}`;
  const rows = {
    forward: [r.forward_ms, r.forward_tokens_per_s, r.forward_engine_peak_mb],
    // llama.cpp's memory is not the engine's (it is in the peak RSS).
    generate: [r.generate_64_ms, r.generate_tokens_per_s, r.generate_engine === "llama.cpp" ? null : r.generate_engine_peak_mb],
    train: [r.train_step_ms, r.train_tokens_per_s, r.train_engine_peak_mb],
    dpo: [r.dpo_step_ms, r.dpo_tokens_per_s, r.dpo_engine_peak_mb],
  } as const;
  const adapter = r.lora ? `; LoRA r ${r.lora.r}, alpha ${r.lora.lora_alpha} on ${[r.lora.target_modules].flat().join(", ")}: ${parameterCount(r.lora.adapter_params)} trained` : "";
  return [
    `${r.config}: ${parameterCount(r.params)} parameters${adapter}, ${r.threads} kernel threads`,
    ...Object.entries(r.shapes).map(([name, shape]) => row(`  ${shape}`, ...rows[name as keyof typeof rows])),
    `  engine heap ${r.engine_heap_mb} MiB · peak RSS ${r.peak_rss_mb} MB`,
  ].join("\n") + "\n";
}

async function profile(workload: string, argv: string[], o: { config: string | undefined; runs: string | undefined; top: string | undefined; json: boolean }): Promise<number> {
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
  const model = o.config === undefined ? null : await readModelConfig(o.config);
  const w = model ? await modelWorkloads(model.config, realSizeSpec) : await standardWorkloads();
  // The first runs compile every kernel; at real sizes one run is enough and each costs seconds.
  const warmup = model ? 1 : 2;
  process.stderr.write(`bench: profiling ${workload}${model ? ` at ${model.path}` : ""} (${repeats} traced repetitions after ${warmup} warm-up runs)…\n`);
  const result = await profileKernels(w.run[workload as WorkloadName], { repeats, warmup });
  await w.dispose();
  if (o.json) process.stdout.write(JSON.stringify({ workload, ...(model ? { config: model.path } : {}), ...result, groups: result.groups.slice(0, top) }) + "\n");
  else process.stdout.write(formatProfile(result, top) + "\n");
  return 0;
}
