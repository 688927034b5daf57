// Small pieces every view uses: how numbers are written, a run's colour mark, a select's options.
import { h, setChildren } from "../../feedback/client/dom.ts";
import type { Run } from "./runs.ts";

/** A metric value in at most 4 decimals, or in exponent form when that would hide it; – for none (NaN, inf). */
export const fmt = (x: number | null | undefined) =>
  x === null || x === undefined ? "–" : Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : String(+x.toFixed(4));

export function swatch(r: Run): HTMLElement {
  const s = h("span", { class: "swatch", "aria-hidden": "true" });
  s.style.background = r.color;
  return s;
}

/** Replaces a select's options only when they changed, keeping the choice when it is still there. */
export function syncOptions(select: HTMLSelectElement, options: [value: string, label: string][]): void {
  const now = Array.from(select.options).map((o) => `${o.value}\t${o.textContent}`).join("\n");
  if (now === options.map(([v, l]) => `${v}\t${l}`).join("\n")) return;
  const current = select.value;
  setChildren(select, ...options.map(([v, l]) => h("option", { value: v }, l)));
  if (options.some(([v]) => v === current)) select.value = current;
}
