// The dashboard page: the runs (each can be hidden), then the metric chart with the monitors'
// events, the reward–KL plane, the sample browser and a loop's rounds. It polls the server every
// second for what the runs appended and redraws the views when anything changed.
import { h, setChildren } from "../../feedback/client/dom.ts";
import { api } from "./api.ts";
import { MetricsView } from "./metrics-view.ts";
import { PlaneView } from "./plane-view.ts";
import { RoundsView } from "./rounds-view.ts";
import { Run } from "./runs.ts";
import { SamplesView } from "./samples-view.ts";
import { swatch } from "./widgets.ts";
import "./style.css";

const POLL_MS = 1000;

const app = document.getElementById("app")!;
const runList = h("ul", { class: "runs", id: "runs" });
const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
const views = [new MetricsView(), new PlaneView(), new SamplesView(), new RoundsView()];
let runs: Run[] = [];

const render = () => {
  renderRunList();
  for (const v of views) v.render(runs);
};

function renderRunList(): void {
  setChildren(runList, ...runs.map((r) => {
    const box = h("input", { type: "checkbox", checked: r.visible, "aria-label": `show ${r.name}` });
    box.addEventListener("change", () => { r.visible = box.checked; render(); });
    return h("li", { "data-run": r.name, "data-last-step": r.lastStep ?? "" },
      h("label", { title: r.summary.path }, box, swatch(r), r.name),
      h("span", { class: "note" }, ` step ${r.lastStep ?? "–"} · ${r.samples.length} samples · ${r.events.length} events`));
  }));
}

async function poll(): Promise<void> {
  try {
    let changed = false;
    for (const r of runs) changed = (await r.poll()) || changed;
    if (changed) render();
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.dataset.kind = "ok";
  } catch (e) {
    status.textContent = `cannot reach the dashboard server: ${(e as Error).message}`;
    status.dataset.kind = "error";
  }
  setTimeout(() => void poll(), POLL_MS);
}

async function start(): Promise<void> {
  setChildren(app, h("header", {}, h("h1", {}, "RLHF dashboard"), status), runList, ...views.map((v) => v.el));
  try {
    runs = (await api.runs()).map((s) => new Run(s));
  } catch (e) {
    status.textContent = `cannot load the runs: ${(e as Error).message}`;
    status.dataset.kind = "error";
    return;
  }
  render();
  await poll();
}

void start();
