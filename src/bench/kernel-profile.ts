// Where the time goes: every kernel jax-js runs during a workload, timed by jax-js's own tracer and
// grouped by what it computes (output size, reduction, number of inputs). Kernel times are exact only
// when dispatch is synchronous, i.e. with one kernel thread (RLHF_THREADS=1); with helper threads a
// traced interval also holds the wait in jax-js's dispatch queue.
import { profiler } from "../engine/runtime.ts";

export interface KernelGroup {
  /** jax-js's label: "Kernel[size]" for generated kernels, the routine's name for CPU routines. */
  label: string;
  /** "Add:1024" for a sum over 1,024 terms (a matmul's inner dimension), "-" for elementwise. */
  reduction: string;
  /** Input buffers; for routines, the input shapes instead. */
  inputs: string;
  /** Calls per repetition, and their summed time per repetition. */
  calls: number;
  ms: number;
}

export interface KernelProfile {
  /** Wall time per repetition, and the part of it spent inside traced kernels. */
  wallMs: number;
  kernelMs: number;
  groups: KernelGroup[];
}

interface TraceEntry {
  name: string;
  duration: number;
  detail?: { devtools?: { properties?: [string, string][] } };
}

/** Runs `fn` `repeats` times under jax-js's tracer (after `warmup` untraced runs, which compile). */
export async function profileKernels(fn: () => Promise<void>, options: { repeats?: number; warmup?: number } = {}): Promise<KernelProfile> {
  const repeats = options.repeats ?? 3;
  for (let i = 0; i < (options.warmup ?? 2); i++) await fn();
  performance.clearMeasures();
  profiler.startTrace();
  const started = performance.now();
  try {
    for (let i = 0; i < repeats; i++) await fn();
  } finally {
    profiler.stopTrace();
  }
  const wallMs = (performance.now() - started) / repeats;
  const groups = new Map<string, KernelGroup>();
  let kernelMs = 0;
  for (const entry of performance.getEntriesByType("measure") as unknown as TraceEntry[]) {
    const props = Object.fromEntries(entry.detail?.devtools?.properties ?? []);
    const reduction = props.reduction ?? "-";
    const inputs = props.nargs ?? props.inputShapes ?? "";
    const key = `${entry.name}\u0000${reduction}\u0000${inputs}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { label: entry.name, reduction, inputs, calls: 0, ms: 0 }));
    g.calls += 1 / repeats;
    g.ms += entry.duration / repeats;
    kernelMs += entry.duration / repeats;
  }
  performance.clearMeasures();
  return { wallMs, kernelMs, groups: [...groups.values()].sort((a, b) => b.ms - a.ms) };
}

/** A plain-text table of the `top` costliest groups. */
export function formatProfile(p: KernelProfile, top = 25): string {
  const share = (ms: number) => `${((100 * ms) / p.kernelMs).toFixed(1)}%`.padStart(5);
  const lines = [`wall ${p.wallMs.toFixed(1)} ms per repetition, ${p.kernelMs.toFixed(1)} ms in kernels`, "      ms  share  calls  kernel  reduction  inputs"];
  for (const g of p.groups.slice(0, top)) {
    lines.push(`${g.ms.toFixed(2).padStart(8)}  ${share(g.ms)}  ${String(Math.round(g.calls)).padStart(5)}  ${g.label}  ${g.reduction}  ${g.inputs}`);
  }
  if (p.groups.length > top) {
    const rest = p.groups.slice(top).reduce((n, g) => n + g.ms, 0);
    lines.push(`${rest.toFixed(2).padStart(8)}  ${share(rest)}  in ${p.groups.length - top} more groups`);
  }
  return lines.join("\n");
}
