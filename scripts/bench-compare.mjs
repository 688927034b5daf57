#!/usr/bin/env node
// `npm run bench:compare`: our benchmark (`rlhf bench --json`) against the same model in PyTorch
// (scripts/reference/bench_torch.py), run one after the other so they never share the cores.
// On a shared machine the speed of both drifts by 10-30% within minutes, so the pair is run
// `--rounds N` times (default 3), alternating, and the ratio reported is the median of the rounds'.
// Prints a table, then one JSON line: {ours, torch, ratio, rounds} with ours and torch the median
// of each metric, ratio = ours / torch per metric (median over rounds), rounds the per-round ratios.
// `--config NAME` (a shipped config's name or a config.json path) compares `rlhf bench --config`
// with bench_torch.py --config at that model's shape instead; workloads that do not fit our engine
// are shown as "did not fit" and left out of the ratios. `--config NAME --use_peft` compares the
// LoRA DPO step (`rlhf bench --config --use_peft`, bench_torch.py --use_peft: TRL's LoRA defaults
// on both sides, LoRA in plain PyTorch there); a round whose two adapters differ in size stops the
// comparison. `[--config NAME] --rollout_engine llama.cpp` compares generation alone, ours on
// llama.cpp (`rlhf bench --rollout_engine llama.cpp`, `--rollout_dtype f16|q8_0` passed on: torch
// still computes in float32), torch's as always. Every ratio is ours / torch, so for the tokens/s metrics a ratio below 1 means ours
// is slower.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const PYTHON = "/usr/bin/python3"; // Debian's python3-torch, not whatever python3 is first on PATH
function flag(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : fallback;
}
const configArg = flag("--config");
const configPath = configArg === undefined ? undefined : existsSync(configArg) ? configArg : join(root, "configs", `${configArg}.json`);
if (configPath !== undefined && !existsSync(configPath)) {
  process.stderr.write(`[bench:compare] --config: no file ${configArg}, and no configs/${configArg}.json\n`);
  process.exit(2);
}
const usePeft = process.argv.includes("--use_peft");
if (usePeft && configPath === undefined) {
  process.stderr.write("[bench:compare] --use_peft needs --config NAME (the LoRA DPO step is timed at a real model's shape)\n");
  process.exit(2);
}
// --rollout_engine llama.cpp: our generation on llama.cpp (rlhf bench --rollout_engine) against
// torch's generation, the only workload the engine changes.
const rolloutEngine = flag("--rollout_engine");
if (rolloutEngine !== undefined && usePeft) {
  process.stderr.write("[bench:compare] --rollout_engine times generation, --use_peft a LoRA DPO step; give one of them\n");
  process.exit(2);
}
const rolloutDtype = flag("--rollout_dtype");
if (rolloutDtype !== undefined && rolloutEngine === undefined) {
  process.stderr.write("[bench:compare] --rollout_dtype needs --rollout_engine llama.cpp\n");
  process.exit(2);
}
const METRICS = usePeft
  ? ["dpo_step_ms", "dpo_tokens_per_s", "peak_rss_mb"]
  : rolloutEngine !== undefined
  ? ["generate_64_ms", ...(configPath ? ["generate_tokens_per_s"] : []), "peak_rss_mb"]
  : configPath
  ? ["forward_ms", "forward_tokens_per_s", "generate_64_ms", "generate_tokens_per_s", "train_step_ms", "train_tokens_per_s", "peak_rss_mb"]
  : ["train_step_ms", "forward_ms", "generate_64_ms", "peak_rss_mb"];
// Both sides default to the same repetitions (10, or 3 with --config); --runs sets both.
const runs = flag("--runs");
const roundCount = Number(flag("--rounds", "3"));
if (!Number.isInteger(roundCount) || roundCount < 1) {
  process.stderr.write(`[bench:compare] --rounds must be a positive integer, got ${flag("--rounds")}\n`);
  process.exit(2);
}

/** `accept` lets a failed run count when its JSON result explains the failure (a workload that did not fit). */
function run(label, cmd, args, env = {}, accept = () => false) {
  process.stderr.write(`[bench:compare] ${label}: ${cmd} ${args.join(" ")}\n`);
  const r = spawnSync(cmd, args, {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  const parsed = r.error ? null : lastJsonObject(r.stdout);
  const failure = r.error ? String(r.error) : r.status !== 0 && !(parsed && accept(parsed)) ? `exit ${r.status ?? r.signal}` : null;
  const result = failure ? null : parsed;
  if (!result) {
    process.stderr.write(`[bench:compare] ${label} failed (${failure ?? "no JSON object on stdout"})\n`);
    process.stderr.write(`--- stdout ---\n${r.stdout ?? ""}\n--- stderr ---\n${r.stderr ?? ""}\n`);
    process.exit(1);
  }
  return result;
}

// The benchmark may log before its result; take the last line that parses as a JSON object.
function lastJsonObject(stdout) {
  for (const line of (stdout ?? "").trim().split("\n").reverse()) {
    try {
      const value = JSON.parse(line);
      if (value && typeof value === "object" && !Array.isArray(value)) return value;
    } catch {}
  }
  return null;
}

if (spawnSync(PYTHON, ["-c", "import torch"]).status !== 0) {
  process.stderr.write("[bench:compare] torch missing, running scripts/install-torch.sh\n");
  const install = spawnSync("sh", [join(root, "scripts/install-torch.sh")], { stdio: ["ignore", 2, 2] });
  if (install.status !== 0) process.exit(install.status ?? 1);
}

/**
 * OpenBLAS picks its kernels by CPU model; on a model newer than it knows (0.3.21, Debian 12, on an
 * Emerald Rapids Xeon) it falls back to "Prescott" SSE3 kernels, which made torch's training step
 * 607 ms instead of 218. Torch is then given the kernels its CPU's instruction set supports, as a
 * user who knew would do; an OPENBLAS_CORETYPE already set is left alone.
 */
function openblasCoreType() {
  if (process.env.OPENBLAS_CORETYPE) return {};
  const probe = spawnSync(PYTHON, ["-c", "import torch"], { env: { ...process.env, OPENBLAS_VERBOSE: "2" }, encoding: "utf8" });
  const detected = /Core: (\S+)/.exec(`${probe.stdout}${probe.stderr}`)?.[1];
  const legacy = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine", "Northwood", "Banias"];
  if (!detected || !legacy.includes(detected)) return {};
  let flags = "";
  try {
    flags = readFileSync("/proc/cpuinfo", "utf8");
  } catch {}
  const best = /\bavx512f\b/.test(flags) ? "SkylakeX" : /\bavx2\b/.test(flags) ? "Haswell" : null;
  if (!best) return {};
  process.stderr.write(`[bench:compare] OpenBLAS chose ${detected} kernels for this CPU; torch runs with OPENBLAS_CORETYPE=${best}\n`);
  return { OPENBLAS_CORETYPE: best };
}

const torchEnv = { OPENBLAS_NUM_THREADS: "2", ...openblasCoreType() };
const oursResults = [];
const torchResults = [];
const rounds = [];
const shape = [...(configPath ? ["--config", configPath] : []), ...(usePeft ? ["--use_peft"] : [])];
const runsArgs = runs === undefined ? [] : ["--runs", runs];
const didNotFit = (result) => Object.keys(result.did_not_fit ?? {}).length > 0;
for (let r = 1; r <= roundCount; r++) {
  const engineArgs = [...(rolloutEngine === undefined ? [] : ["--rollout_engine", rolloutEngine]), ...(rolloutDtype === undefined ? [] : ["--rollout_dtype", rolloutDtype])];
  const ours = run(`ours, round ${r}/${roundCount}`, process.execPath, ["bin/rlhf.mjs", "bench", "--json", ...shape, ...engineArgs, ...runsArgs], {}, didNotFit);
  const torch = run(`torch, round ${r}/${roundCount}`, PYTHON, ["scripts/reference/bench_torch.py", ...shape, ...(rolloutEngine === undefined ? [] : ["--only", "generate"]), ...runsArgs], torchEnv);
  if (usePeft && ours.lora?.adapter_params !== torch.lora?.adapter_params) {
    process.stderr.write(`[bench:compare] the two sides trained different adapters: ours ${JSON.stringify(ours.lora)}, torch ${JSON.stringify(torch.lora)}\n`);
    process.exit(1);
  }
  const ratio = {};
  for (const m of METRICS) {
    if (typeof ours[m] === "number" && typeof torch[m] === "number" && torch[m] > 0) ratio[m] = ours[m] / torch[m];
  }
  oursResults.push(ours);
  torchResults.push(torch);
  rounds.push(ratio);
}

function median(xs) {
  const s = xs.filter((x) => typeof x === "number").sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
/** The first run's fields, with each metric replaced by its median over the rounds. */
function medianRun(runs) {
  const out = { ...runs[0] };
  for (const m of METRICS) out[m] = median(runs.map((x) => x[m]));
  return out;
}
const ours = medianRun(oursResults);
const torch = medianRun(torchResults);
const ratio = {};
for (const m of METRICS) {
  const v = median(rounds.map((x) => x[m]));
  if (v !== undefined) ratio[m] = v;
}

const notFitting = new Set(oursResults.flatMap((x) => Object.keys(x.did_not_fit ?? {})));
const fmt = (x, digits = 1) => (typeof x === "number" ? x.toFixed(digits) : "-");
const fmtOurs = (m) => ([...notFitting].some((w) => m.startsWith(w)) && typeof ours[m] !== "number" ? "did not fit" : fmt(ours[m]));
const rows = [["metric", "ours", `torch ${torch.torch_version ?? ""}`.trim(), "ours/torch", `rounds (${roundCount})`]];
for (const m of METRICS) {
  const each = rounds.map((x) => (x[m] === undefined ? "-" : fmt(x[m], 2))).join(" ");
  rows.push([m, fmtOurs(m), fmt(torch[m]), ratio[m] === undefined ? "-" : `${fmt(ratio[m], 2)}x`, each]);
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "));
console.log(JSON.stringify({ ours, torch, ratio, rounds }));
