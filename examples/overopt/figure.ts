// The overoptimization figure as an SVG: two panels (best-of-n, PPO), gold and proxy reward gains
// against √KL, Gao's fitted gold curves, and the monitors' events on the PPO panel. Plain SVG
// text, so it needs no chart library; run.sh renders it to PNG with headless Chromium.
import { gaoBestOfN, gaoRl, type GaoFit } from "../../src/rl/overoptimization.ts";

export interface CurvePoint {
  label: string;
  step?: number;
  d: number;
  kl: number;
  proxy: number;
  gold: number;
}
export interface MonitorMark {
  step: number;
  monitor: string;
  d: number;
}

const PANEL = { width: 480, height: 400, left: 58, right: 14, top: 34, bottom: 46 };
const GOLD = "#c0392b";
const PROXY = "#2e6da4";
const EVENT = "#7f7f7f";

/** About 5 round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / 5;
  const step = [1, 2, 2.5, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(raw))).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(Number(t.toFixed(10)));
  return out;
}

function panel(x0: number, title: string, points: CurvePoint[], curve: (d: number) => number, fitLabel: string, marks: MonitorMark[]): string {
  const { width, height, left, right, top, bottom } = PANEL;
  const dMax = Math.max(...points.map((p) => p.d)) * 1.05;
  const ys = points.flatMap((p) => [p.gold, p.proxy]);
  const samples = Array.from({ length: 101 }, (_, i) => (dMax * i) / 100);
  ys.push(...samples.map(curve));
  const yPad = (Math.max(...ys) - Math.min(...ys)) * 0.06;
  const [yLo, yHi] = [Math.min(...ys, 0) - yPad, Math.max(...ys) + yPad];
  const sx = (d: number) => x0 + left + ((width - left - right) * d) / dMax;
  const sy = (y: number) => top + ((height - top - bottom) * (yHi - y)) / (yHi - yLo);
  const line = (xs: number[], yv: number[], color: string, dash = "") =>
    `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ""} points="${xs.map((x, i) => `${sx(x).toFixed(1)},${sy(yv[i]!).toFixed(1)}`).join(" ")}"/>`;
  const dots = (key: "gold" | "proxy", color: string, filled: boolean) =>
    points.map((p) => `<circle cx="${sx(p.d).toFixed(1)}" cy="${sy(p[key]).toFixed(1)}" r="3.5" stroke="${color}" stroke-width="1.5" fill="${filled ? color : "white"}"><title>${p.label}: ${key} ${p[key].toFixed(3)}, KL ${p.kl.toFixed(2)}</title></circle>`).join("");
  const axes = [
    `<rect x="${x0 + left}" y="${top}" width="${width - left - right}" height="${height - top - bottom}" fill="none" stroke="#333"/>`,
    ...ticks(0, dMax).map((t) => `<text x="${sx(t)}" y="${height - bottom + 16}" text-anchor="middle">${t}</text>`),
    ...ticks(yLo, yHi).map((t) => `<text x="${x0 + left - 6}" y="${sy(t) + 4}" text-anchor="end">${t}</text><line x1="${x0 + left}" x2="${x0 + width - right}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/>`),
    `<line x1="${x0 + left}" x2="${x0 + width - right}" y1="${sy(0)}" y2="${sy(0)}" stroke="#bbb"/>`,
    `<text x="${x0 + (left + width - right) / 2}" y="${height - 10}" text-anchor="middle">√KL (nats½)</text>`,
    `<text x="${x0 + 14}" y="${(top + height - bottom) / 2}" text-anchor="middle" transform="rotate(-90 ${x0 + 14} ${(top + height - bottom) / 2})">reward gain over the reference</text>`,
    `<text x="${x0 + left}" y="${top - 12}" font-weight="bold">${title}</text>`,
  ];
  // One dashed line per event; events closer than 14 px share one label, written up the line.
  const groups: { x: number; text: string[] }[] = [];
  for (const m of marks) {
    const x = sx(m.d);
    const near = groups.at(-1);
    if (near && x - near.x < 14) near.text.push(`${m.monitor} ${m.step}`);
    else groups.push({ x, text: [`${m.monitor} ${m.step}`] });
  }
  const events = [
    ...marks.map((m) => `<line x1="${sx(m.d).toFixed(1)}" x2="${sx(m.d).toFixed(1)}" y1="${top}" y2="${height - bottom}" stroke="${EVENT}" stroke-dasharray="3 3"/>`),
    ...groups.map(({ x, text }) => {
      const [tx, ty] = [(x - 3).toFixed(1), height - bottom - 6];
      return `<text x="${tx}" y="${ty}" transform="rotate(-90 ${tx} ${ty})" fill="${EVENT}" font-size="11">${text.join(", ")}</text>`;
    }),
  ];
  const legend = [
    [GOLD, true, `gold (points), fit ${fitLabel}`],
    [PROXY, false, "proxy (the reward optimised)"],
  ].map(([color, filled, text], i) => `<circle cx="${x0 + left + 14}" cy="${top + 14 + 16 * i}" r="3.5" stroke="${color}" stroke-width="1.5" fill="${filled ? color : "white"}"/><text x="${x0 + left + 24}" y="${top + 18 + 16 * i}">${text}</text>`);
  return [...axes, ...events, line(samples, samples.map(curve), GOLD), line(points.map((p) => p.d), points.map((p) => p.proxy), PROXY, "5 4"), dots("proxy", PROXY, false), dots("gold", GOLD, true), ...legend].join("\n");
}

export function drawFigure({ points, fits, marks }: { points: { best_of_n: CurvePoint[]; rl: CurvePoint[] }; fits: { best_of_n: GaoFit; rl: GaoFit }; marks: MonitorMark[] }): string {
  const f = (x: number) => x.toFixed(3);
  const { best_of_n: b, rl } = fits;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * PANEL.width}" height="${PANEL.height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
${panel(0, "Best-of-n against the proxy (n = 1…64)", points.best_of_n, (d) => gaoBestOfN(b, d), `d(${f(b.alpha)} − ${f(b.beta)}d)`, [])}
${panel(PANEL.width, "PPO against the proxy (kl_coef 0), monitors (step)", points.rl, (d) => gaoRl(rl, d), `d(${f(rl.alpha)} − ${f(rl.beta)} ln d)`, marks)}
</svg>
`;
}
