// The README's dashboard screenshots, taken from real runs: starts `rlhf dashboard` on the given
// run directories, opens it in headless Chromium and saves the metric chart, the reward–KL plane
// and the sample browser (one sample opened) as PNGs.
//
//   node --import tsx scripts/dashboard-screenshots.ts [--metric NAME] [--per-checkpoint] [--sample-run NAME] [--search TEXT] [--out docs/img] RUN_DIR…
import { statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildClient, launchChromium, ROOT, startServer, stopServer } from "../test/e2e/browser.ts";

const MAX_BYTES = 200 * 1024; // each PNG, so the README stays light

const { values: v, positionals: runs } = parseArgs({
  allowPositionals: true,
  options: { metric: { type: "string", default: "objective/scores" }, search: { type: "string", default: "" }, "sample-run": { type: "string" }, "per-checkpoint": { type: "boolean" }, out: { type: "string", default: "docs/img" } },
});
if (runs.length === 0) {
  console.error("usage: node --import tsx scripts/dashboard-screenshots.ts [--metric NAME] [--per-checkpoint] [--sample-run NAME] [--search TEXT] [--out DIR] RUN_DIR…");
  process.exit(2);
}

buildClient("src/dashboard/client/vite.config.ts");
const { child, url } = await startServer([join(ROOT, "bin/rlhf.mjs"), "dashboard", ...runs, "--port", "0"]);
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 }, deviceScaleFactor: 1 });
  await page.goto(url);
  await page.locator("#runs li").nth(runs.length - 1).waitFor();
  await page.locator("#metric-chart canvas").waitFor();
  await page.getByLabel("metric").selectOption(v.metric!);
  const markers = page.locator("#metric-chart .event-marker");
  if (await markers.count()) await markers.first().hover(); // show one event's message
  await page.waitForTimeout(300);
  const shots: [string, string][] = [["dashboard-metrics.png", "#metrics"], ["dashboard-plane.png", "#plane"], ["dashboard-samples.png", "#samples"]];
  await page.locator(shots[0]![1]).screenshot({ path: join(v.out!, shots[0]![0]) });
  await page.mouse.move(0, 0);
  if (v["per-checkpoint"]) await page.getByLabel("a point at each checkpoint too").check();
  await page.locator(shots[1]![1]).screenshot({ path: join(v.out!, shots[1]![0]) });
  if (v["sample-run"]) await page.locator("#sample-run").selectOption({ label: v["sample-run"] });
  if (v.search) await page.getByLabel("search samples").fill(v.search);
  await page.locator("#samples tr.sample-row").first().click();
  await page.locator(shots[2]![1]).screenshot({ path: join(v.out!, shots[2]![0]) });
  for (const [file] of shots) {
    const bytes = statSync(join(v.out!, file)).size;
    console.log(`${join(v.out!, file)}: ${(bytes / 1024).toFixed(0)} KB`);
    if (bytes > MAX_BYTES) throw new Error(`${file} is ${bytes} bytes, over the ${MAX_BYTES} the README allows`);
  }
} finally {
  await browser.close();
  await stopServer(child);
}
