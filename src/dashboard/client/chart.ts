// A uPlot chart that owns its element: created on first data, rebuilt when its series change,
// otherwise given new data in place, and resized with the page.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export class Chart {
  #plot: uPlot | undefined;
  #key = "";

  constructor(readonly el: HTMLElement, readonly height: number) {
    window.addEventListener("resize", () => this.#plot?.setSize({ width: this.#width(), height }));
  }

  #width = () => Math.max(300, this.el.clientWidth);

  /** `key` names the series layout: a new key builds a new chart, the same key only swaps the data. */
  show(key: string, opts: () => Omit<uPlot.Options, "width" | "height">, data: uPlot.AlignedData): void {
    if (this.#plot && key === this.#key) {
      this.#plot.setData(data);
      return;
    }
    this.clear();
    this.#key = key;
    this.#plot = new uPlot({ ...opts(), width: this.#width(), height: this.height }, data, this.el);
  }

  clear(): void {
    this.#plot?.destroy();
    this.#plot = undefined;
    this.#key = "";
  }
}

/** One series' (x, y) pairs sorted by x, the last one kept where an x repeats: a table for uPlot.join. */
export function xyTable(points: { x: number; y: number | null }[]): uPlot.AlignedData {
  const byX = new Map<number, number | null>();
  for (const p of points) byX.set(p.x, p.y);
  const xs = [...byX.keys()].sort((a, b) => a - b);
  return [xs, xs.map((x) => byX.get(x)!)];
}
