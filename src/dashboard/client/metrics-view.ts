// Any logged metric against steps, every visible run overlaid, with the monitors' events marked as
// vertical lines in the run's colour (hover one for its message) and listed below the chart.
import uPlot from "uplot";
import { h, setChildren } from "../../feedback/client/dom.ts";
import { Chart, xyTable } from "./chart.ts";
import { fmt, swatch, syncOptions } from "./widgets.ts";
import type { Run } from "./runs.ts";

// The first of these a run logs is shown first: the reward the policy is trained on.
const PREFERRED = ["objective/scores", "reward", "objective/rlhf_reward", "loss", "eval_loss"];

export class MetricsView {
  readonly el: HTMLElement;
  readonly #picker = h("select", { id: "metric", "aria-label": "metric" });
  readonly #chart = new Chart(h("div", { class: "chart", id: "metric-chart" }), 340);
  readonly #tip = h("div", { class: "event-tip", role: "tooltip", hidden: true });
  readonly #note = h("p", { class: "note" });
  readonly #events = h("tbody");
  #runs: Run[] = [];
  #picked = false; // once the user picks a metric, new metrics appearing do not move the choice

  constructor() {
    this.#picker.addEventListener("change", () => { this.#picked = true; this.render(this.#runs); });
    this.el = h("section", { id: "metrics" },
      h("h2", {}, "Metrics"),
      h("label", {}, "Metric ", this.#picker),
      this.#note,
      h("div", { class: "chart-box" }, this.#chart.el, this.#tip),
      h("h3", {}, "Monitor events"),
      h("table", { class: "events" },
        h("thead", {}, h("tr", {}, ...["run", "step", "monitor", "value", "threshold", "message"].map((c) => h("th", {}, c)))),
        this.#events),
    );
  }

  get metric(): string { return this.#picker.value; }

  render(runs: Run[]): void {
    this.#runs = runs;
    const visible = runs.filter((r) => r.visible);
    this.#updatePicker(visible);
    const metric = this.metric;
    const plotted = visible.filter((r) => r.metrics.some((m) => typeof m[metric] === "number"));
    this.#renderEvents(visible);
    this.#chart.el.dataset.metric = metric;
    this.#chart.el.dataset.runs = plotted.map((r) => r.name).join("\n");
    this.#chart.el.dataset.lastSteps = plotted.map((r) => r.lastStep ?? "").join(",");
    if (!metric || plotted.length === 0) {
      this.#chart.clear();
      this.#note.textContent = metric ? `No visible run logs ${metric}.` : "No metrics logged yet.";
      return;
    }
    const missing = visible.filter((r) => !plotted.includes(r)).map((r) => r.name);
    this.#note.textContent = missing.length ? `Not logged by ${missing.join(", ")}.` : "";
    const tables = plotted.map((r) => xyTable(r.metrics.filter((m) => m.step !== undefined && m[metric] !== undefined).map((m) => ({ x: m.step!, y: m[metric]! }))));
    const data = tables.length === 1 ? tables[0]! : uPlot.join(tables);
    this.#chart.show(`${metric}|${plotted.map((r) => r.summary.index).join(",")}`, () => ({
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { label: metric, size: 70 }],
      series: [{ label: "step" }, ...plotted.map((r) => ({ label: r.name, stroke: r.color, width: 2, spanGaps: true, value: (_: uPlot, v: number | null) => fmt(v) }))],
      hooks: { draw: [(u: uPlot) => this.#markEvents(u, plotted)] },
    }), data);
  }

  #updatePicker(visible: Run[]): void {
    const names = new Set<string>();
    for (const r of visible) for (const m of r.metrics) for (const k of Object.keys(m)) if (k !== "step") names.add(k);
    syncOptions(this.#picker, [...names].sort().map((n) => [n, n]));
    if (!this.#picked) this.#picker.value = PREFERRED.find((p) => names.has(p)) ?? this.#picker.value;
  }

  // Markers are elements over the plot, not canvas strokes, so each can carry its message (title,
  // hover tip) and be found by tests and screen readers.
  #markEvents(u: uPlot, plotted: Run[]): void {
    u.over.querySelectorAll(".event-marker").forEach((m) => m.remove());
    const [lo, hi] = [u.scales.x!.min ?? -Infinity, u.scales.x!.max ?? Infinity];
    for (const r of plotted) {
      for (const e of r.events) {
        if (e.step < lo || e.step > hi) continue;
        const text = eventText(r, e);
        const marker = h("div", { class: "event-marker", role: "img", "aria-label": text, title: text, "data-step": e.step, "data-run": r.name, "data-monitor": e.monitor });
        marker.style.left = `${u.valToPos(e.step, "x")}px`;
        marker.style.background = r.color;
        marker.addEventListener("mouseenter", () => {
          this.#tip.textContent = text;
          this.#tip.hidden = false;
          // Right of the marker, or left of it when it would run past the chart's edge.
          const x = u.over.offsetLeft + u.valToPos(e.step, "x");
          const room = this.#chart.el.clientWidth - this.#tip.offsetWidth;
          this.#tip.style.left = `${x + 8 <= room ? x + 8 : Math.max(0, x - 8 - this.#tip.offsetWidth)}px`;
        });
        marker.addEventListener("mouseleave", () => { this.#tip.hidden = true; });
        u.over.append(marker);
      }
    }
  }

  #renderEvents(visible: Run[]): void {
    const rows = visible.flatMap((r) => r.events.map((e) => ({ r, e }))).sort((a, b) => a.e.step - b.e.step);
    setChildren(this.#events, ...(rows.length ? rows.map(({ r, e }) => h("tr", {},
      h("td", {}, swatch(r), r.name), h("td", {}, e.step), h("td", {}, e.monitor), h("td", {}, fmt(e.value)), h("td", {}, fmt(e.threshold)), h("td", {}, e.message),
    )) : [h("tr", {}, h("td", { colspan: 6, class: "note" }, "No monitor fired in the visible runs."))]));
  }
}

export const eventText = (r: Run, e: Run["events"][number]) =>
  `${r.name}, step ${e.step}: ${e.monitor} ${fmt(e.value)} (threshold ${fmt(e.threshold)}): ${e.message}`;
