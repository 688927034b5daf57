// The sample browser: the completions a run kept in samples.jsonl, filtered by step and by a
// search over prompt, completion and the other fields; one opens with its prompt, completion, score
// and KL (its own when the writer logged one, else its step's objective/kl). Every text is a text
// node: model outputs never become markup.
import { h, setChildren } from "../../feedback/client/dom.ts";
import { fmt, syncOptions } from "./widgets.ts";
import type { Run, Sample } from "./runs.ts";

const MAX_ROWS = 200; // newest first; the search narrows the rest
const snippet = (s: string, n = 90) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

export class SamplesView {
  readonly el: HTMLElement;
  readonly #run = h("select", { id: "sample-run", "aria-label": "run" });
  readonly #step = h("select", { id: "sample-step", "aria-label": "step" });
  readonly #search = h("input", { id: "sample-search", type: "search", placeholder: "search prompts and completions", "aria-label": "search samples" });
  readonly #count = h("span", { class: "note" });
  readonly #list = h("tbody");
  readonly #detail = h("div", { class: "sample-detail", id: "sample-detail", hidden: true });
  #runs: Run[] = [];

  constructor() {
    for (const c of [this.#run, this.#step]) c.addEventListener("change", () => this.render(this.#runs));
    this.#search.addEventListener("input", () => this.render(this.#runs));
    this.el = h("section", { id: "samples" },
      h("h2", {}, "Samples"),
      h("div", { class: "controls" }, h("label", {}, "Run ", this.#run), h("label", {}, "Step ", this.#step), this.#search, this.#count),
      h("div", { class: "samples-box" },
        h("table", { class: "samples" },
          h("thead", {}, h("tr", {}, ...["step", "score", "KL", "prompt", "completion"].map((c) => h("th", {}, c)))),
          this.#list),
        this.#detail),
    );
  }

  render(runs: Run[]): void {
    this.#runs = runs;
    const withSamples = runs.filter((r) => r.samples.length > 0);
    syncOptions(this.#run, withSamples.map((r) => [String(r.summary.index), r.name]));
    const run = withSamples.find((r) => String(r.summary.index) === this.#run.value);
    if (!run) {
      setChildren(this.#list, h("tr", {}, h("td", { colspan: 5, class: "note" }, "No run has written samples.jsonl yet.")));
      return;
    }
    const steps = [...new Set(run.samples.map((s) => s.step))].sort((a, b) => (a ?? -1) - (b ?? -1));
    syncOptions(this.#step, [["", "all"], ...steps.map((s): [string, string] => [String(s), s === null ? "none" : String(s)])]);
    const query = this.#search.value.trim().toLowerCase();
    const matches = run.samples
      .map((s, i) => ({ s, i }))
      .filter(({ s }) => this.#step.value === "" || String(s.step) === this.#step.value)
      .filter(({ s }) => !query || searchText(s).includes(query))
      .reverse();
    this.#count.textContent = `${matches.length} of ${run.samples.length}` + (matches.length > MAX_ROWS ? `, newest ${MAX_ROWS} shown` : "");
    setChildren(this.#list, ...matches.slice(0, MAX_ROWS).map(({ s, i }) => {
      const row = h("tr", { class: "sample-row", tabindex: 0, "data-index": i },
        h("td", {}, s.step ?? "–"), h("td", {}, fmt(s.score)), h("td", {}, fmt(klOf(run, s))), h("td", {}, snippet(s.prompt, 60)), h("td", {}, snippet(s.completion)));
      const open = () => this.#open(run, s, row);
      row.addEventListener("click", open);
      row.addEventListener("keydown", (e) => { if ((e as KeyboardEvent).key === "Enter") open(); });
      return row;
    }));
  }

  #open(run: Run, s: Sample, row: HTMLElement): void {
    this.#list.querySelectorAll(".selected").forEach((r) => r.classList.remove("selected"));
    row.classList.add("selected");
    const field = (name: string, value: string | number) => [h("dt", {}, name), h("dd", {}, typeof value === "number" ? fmt(value) : value)];
    setChildren(this.#detail,
      h("h3", {}, `${run.name}, step ${s.step ?? "–"}`),
      h("dl", {},
        ...field("score", s.score ?? "–"),
        ...field(s.kl === null ? "KL (the step's objective/kl)" : "KL", klOf(run, s) ?? "–"),
        ...Object.entries(s.extra).flatMap(([k, v]) => (typeof v === "number" ? field(k, v) : []))),
      h("h4", {}, "Prompt"), h("pre", { class: "text prompt" }, s.prompt),
      h("h4", {}, "Completion"), h("pre", { class: "text completion" }, s.completion),
      ...Object.entries(s.extra).flatMap(([k, v]) => (typeof v === "string" ? [h("h4", {}, k), h("pre", { class: "text" }, v)] : [])),
    );
    this.#detail.hidden = false;
  }
}

const klOf = (run: Run, s: Sample) => s.kl ?? run.metricAt(s.step, "objective/kl");
const searchText = (s: Sample) => [s.prompt, s.completion, ...Object.values(s.extra)].join("\n").toLowerCase();
