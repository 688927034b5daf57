// A loop's rounds (rounds.jsonl: `round`, `rm_accuracy`, `reward`, `kl`, `win_rate`, …), one table
// per run that has them; the section stays hidden while no run does.
import { h, setChildren } from "../../feedback/client/dom.ts";
import type { Run } from "./runs.ts";
import { fmt, swatch } from "./widgets.ts";

export class RoundsView {
  readonly el = h("section", { id: "rounds", hidden: true });

  render(runs: Run[]): void {
    const looped = runs.filter((r) => r.visible && r.rounds.length > 0);
    this.el.hidden = looped.length === 0;
    setChildren(this.el, h("h2", {}, "Rounds"), ...looped.map((run) => {
      const columns = [...new Set(run.rounds.flatMap((r) => Object.keys(r)))];
      columns.sort((a, b) => Number(b === "round") - Number(a === "round")); // `round` first, the rest as written
      return h("div", { class: "rounds-run" },
        h("h3", {}, swatch(run), run.name),
        h("table", { class: "rounds", "data-run": run.name },
          h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", {}, c)))),
          h("tbody", {}, ...run.rounds.map((r) => h("tr", {}, ...columns.map((c) => {
            const v = r[c];
            return h("td", {}, typeof v === "number" ? fmt(v) : v ?? "–");
          }))))));
    }));
  }
}
