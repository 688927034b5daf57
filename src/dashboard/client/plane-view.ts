// The reward–KL plane: one point per run (the mean of its last logged steps) or, where the run holds
// `rlhf eval` reports, one per evaluation (final model and checkpoints), and the upper frontier
// through them. Points above and left of others bought their reward with less KL.
import uPlot from "uplot";
import { h, setChildren } from "../../feedback/client/dom.ts";
import { upperFrontier } from "../shared/frontier.ts";
import { Chart } from "./chart.ts";
import { fmt, swatch } from "./widgets.ts";
import type { Run } from "./runs.ts";

/** Steps averaged for a run's training point: one step's batch is noisy. */
export const LAST_STEPS = 5;
// The score the policy is trained on, under each trainer's name (METRICS.md), and the sequence KL.
const REWARD_KEYS = ["objective/scores", "reward"];
const KL_KEY = "objective/kl";

/** `tag`: the short name drawn beside the point on the chart. */
export interface Point { run: Run; label: string; tag: string; kl: number; reward: number }

/** The mean reward and KL of the run's last LAST_STEPS logged steps up to `upTo`. */
function trainingPoint(run: Run, upTo = Infinity): Omit<Point, "tag"> | undefined {
  const key = REWARD_KEYS.find((k) => run.metrics.some((m) => typeof m[k] === "number"));
  if (!key) return undefined;
  const rows = run.metrics.filter((m) => (m.step ?? 0) <= upTo && typeof m[key] === "number" && typeof m[KL_KEY] === "number").slice(-LAST_STEPS);
  if (rows.length === 0) return undefined;
  const mean = (k: string) => rows.reduce((s, m) => s + m[k]!, 0) / rows.length;
  const steps = rows.length === 1 ? `step ${rows[0]!.step}` : `steps ${rows[0]!.step}–${rows[rows.length - 1]!.step}`;
  return { run, label: `training, ${steps}`, kl: mean(KL_KEY), reward: mean(key) };
}

/** A run's points: its evaluations; else its training point, or with `perCheckpoint` one at each checkpoint's step and one at its last. */
export function planePoints(runs: Run[], perCheckpoint: boolean): Point[] {
  return runs.flatMap((run): Point[] => {
    if (run.evals.length) {
      return run.evals.map((e) => ({ run, label: `eval ${e.step === null ? "final" : `step ${e.step}`} (${e.file})`, tag: e.step === null ? run.name : String(e.step), kl: e.kl, reward: e.reward }));
    }
    const last = trainingPoint(run);
    if (!last) return [];
    const atCheckpoints = perCheckpoint ? run.checkpoints.filter((s) => s < (run.lastStep ?? 0)) : [];
    return [
      ...atCheckpoints.flatMap((step) => {
        const p = trainingPoint(run, step);
        return p ? [{ ...p, label: `checkpoint-${step}: ${p.label}`, tag: String(step) }] : [];
      }),
      { ...last, tag: run.name },
    ];
  });
}

export class PlaneView {
  readonly el: HTMLElement;
  readonly #chart = new Chart(h("div", { class: "chart", id: "plane-chart" }), 320);
  readonly #rows = h("tbody");
  readonly #note = h("p", { class: "note" });
  readonly #perCheckpoint = h("input", { type: "checkbox", id: "per-checkpoint" });
  #points: Point[] = []; // read by the chart's draw hook, which outlives one render

  #runs: Run[] = [];

  constructor() {
    this.#perCheckpoint.addEventListener("change", () => this.render(this.#runs));
    this.el = h("section", { id: "plane" },
      h("h2", {}, "Reward against KL"),
      h("p", { class: "note" }, `One point per run: its evaluations (rlhf eval --json saved as eval.json in the run or a checkpoint), or else the mean of its last ${LAST_STEPS} logged steps. The dashed line is the upper frontier.`),
      h("label", {}, this.#perCheckpoint, " a point at each checkpoint too (the mean of the steps before it)"),
      this.#note,
      this.#chart.el,
      h("table", { class: "plane" },
        h("thead", {}, h("tr", {}, ...["run", "point", "KL", "reward", "frontier"].map((c) => h("th", {}, c)))),
        this.#rows),
    );
  }

  render(runs: Run[]): void {
    this.#runs = runs;
    const points = planePoints(runs.filter((r) => r.visible), this.#perCheckpoint.checked).sort((a, b) => a.kl - b.kl);
    const onFrontier = new Set(upperFrontier(points));
    this.#points = points;
    setChildren(this.#rows, ...points.map((p, i) => h("tr", { "data-frontier": onFrontier.has(i) ? "yes" : "no" },
      h("td", {}, swatch(p.run), p.run.name), h("td", {}, p.label), h("td", {}, fmt(p.kl)), h("td", {}, fmt(p.reward)), h("td", {}, onFrontier.has(i) ? "✓" : ""))));
    if (points.length === 0) {
      this.#chart.clear();
      this.#note.textContent = "No visible run has logged both a reward and objective/kl, or has an evaluation.";
      return;
    }
    this.#note.textContent = "";
    // uPlot wants one ascending x: the points' KLs, each run's series holding its own points' rewards.
    const plotted = [...new Set(points.map((p) => p.run))];
    const xs = points.map((p) => p.kl);
    const data: uPlot.AlignedData = [
      xs,
      ...plotted.map((run) => points.map((p) => (p.run === run ? p.reward : null))),
      points.map((p, i) => (onFrontier.has(i) ? p.reward : null)),
    ];
    this.#chart.show(plotted.map((r) => r.summary.index).join(","), () => ({
      scales: { x: { time: false } },
      axes: [{ label: "KL(policy ‖ reference), nats" }, { label: "reward", size: 60 }],
      series: [
        { label: "KL", value: (_: uPlot, v: number | null) => fmt(v) },
        ...plotted.map((r) => ({ label: r.name, stroke: r.color, paths: () => null, points: { show: true, size: 10, fill: r.color }, value: (_: uPlot, v: number | null) => fmt(v) })),
        { label: "frontier", stroke: "#555", dash: [6, 4], width: 1.5, spanGaps: true, points: { show: false }, value: (_: uPlot, v: number | null) => fmt(v) },
      ],
      hooks: { draw: [(u: uPlot) => labelPoints(u, this.#points)] },
    }), data);
  }
}

// Each point's tag (its run, or its checkpoint's step) beside it, on the canvas; the table below says the same as text.
function labelPoints(u: uPlot, points: Point[]): void {
  const ctx = u.ctx;
  ctx.save();
  ctx.font = `${Math.round(11 * devicePixelRatio)}px sans-serif`;
  ctx.fillStyle = "#333";
  for (const p of points) {
    ctx.fillText(p.tag, u.valToPos(p.kl, "x", true) + 8 * devicePixelRatio, u.valToPos(p.reward, "y", true) - 6 * devicePixelRatio);
  }
  ctx.restore();
}
