// End to end: `rlhf dashboard` on two run directories written here, driven in headless Chromium.
// Overlays a metric of both runs, sees a run's monitor events on the curve and in the list, opens
// a sample (hostile text stays text), reads the reward–KL plane and its frontier and a loop's
// rounds, then follows a run as a writer appends to it: a half-written line is not shown until its
// newline comes, and a metrics file replaced by a resumed run is read again from its start.
//
//   node --import tsx --test test/e2e/dashboard.test.ts
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { buildClient, launchChromium, ROOT, startServer, stopServer } from "./browser.ts";

const HOSTILE = `<script>alert(1)</script><img src=x onerror="alert(2)"> the end`;
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r) + "\n").join("");
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

// PPO-like run: reward rises with KL; a monitor fires twice.
const ppoMetrics = (step: number) => ({ step, "objective/scores": -2 + 0.25 * step, "objective/kl": 1.5 * step, loss: 1 / step });
const PPO_EVENTS = [
  { step: 4, monitor: "kl_acceleration", value: 6, threshold: 4, message: "KL rising faster than its trend" },
  { step: 5, monitor: "length_jump", value: 48, threshold: 30, message: "response length jumped against its baseline" },
];
const PPO_SAMPLES = [
  { step: 1, prompt: "Once upon a time, a dragon", completion: "slept in a cave.", score: -1.5 },
  { step: 5, prompt: "Once upon a time, a cat", completion: HOSTILE, score: 0.75 },
  { step: 5, prompt: "Once upon a time, a dog", completion: "ran to the park.", score: 0.25 },
];
// GRPO-like run with evaluations (final and a checkpoint) and a loop's rounds.
const grpoMetrics = (step: number) => ({ step, reward: -1 + 0.1 * step, "objective/kl": 0.5 * step });

let dir = "";
let runA = "";
let runB = "";
let server: ChildProcess | undefined;
let browser: Browser | undefined;
let url = "";

before(async () => {
  buildClient("src/dashboard/client/vite.config.ts");
  dir = mkdtempSync(join(tmpdir(), "dashboard-e2e-"));
  runA = join(dir, "ppo-a");
  runB = join(dir, "grpo-b");
  mkdirSync(join(runA, "checkpoint-3"), { recursive: true });
  mkdirSync(join(runB, "checkpoint-2"), { recursive: true });
  writeFileSync(join(runA, "metrics.jsonl"), jsonl(range(6).map(ppoMetrics)));
  writeFileSync(join(runA, "events.jsonl"), jsonl(PPO_EVENTS));
  writeFileSync(join(runA, "samples.jsonl"), jsonl(PPO_SAMPLES));
  writeFileSync(join(runB, "metrics.jsonl"), jsonl(range(5).map(grpoMetrics)));
  writeFileSync(join(runB, "eval.json"), JSON.stringify({ reward: -0.2, reference_reward: -1.7, kl: 2, length: 48, win_rate: 0.8, num_prompts: 21, num_samples: 4 }));
  writeFileSync(join(runB, "checkpoint-2", "eval.json"), JSON.stringify({ reward: -1.2, reference_reward: -1.7, kl: 1, length: 48, win_rate: 0.6 }));
  writeFileSync(join(runB, "rounds.jsonl"), jsonl([{ round: 1, rm_accuracy: 0.7, reward: -1, kl: 1, win_rate: 0.6 }, { round: 2, rm_accuracy: 0.74, reward: -0.5, kl: 2, win_rate: 0.7 }]));
  ({ child: server, url } = await startServer([join(ROOT, "bin/rlhf.mjs"), "dashboard", runA, runB, "--port", "0"]));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const lastStepOf = (page: Page, run: string) => page.locator(`#runs li[data-run="${run}"]`).getAttribute("data-last-step");
// Polled from here: the page's CSP forbids the string evaluation page.waitForFunction would use.
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (const end = Date.now() + 10_000; !(await check());) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}
const attr = (page: Page, selector: string, name: string) => page.locator(selector).first().getAttribute(name);
const count = (page: Page, selector: string) => page.locator(selector).count();

test("two runs overlaid, their events, a sample, the reward-KL plane, rounds, and live updates", async () => {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 1000 } });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); }); // CSP violations land here
  page.on("dialog", (d) => { problems.push(`dialog: ${d.message()}`); void d.dismiss(); });
  await page.goto(url);

  // Both runs listed, with their last steps.
  await page.locator("#runs li").nth(1).waitFor();
  assert.equal(await lastStepOf(page, "ppo-a"), "6");
  assert.equal(await lastStepOf(page, "grpo-b"), "5");

  // Overlay: objective/kl is logged by both; the chart draws a series for each.
  await page.getByLabel("metric").selectOption("objective/kl");
  await until("both runs on the chart", async () => (await attr(page, "#metric-chart", "data-runs")) === "ppo-a\ngrpo-b");
  const legend = await page.locator("#metric-chart .u-legend").textContent();
  assert.ok(legend!.includes("ppo-a") && legend!.includes("grpo-b"), `legend: ${legend}`);
  assert.equal(await page.locator("#metric-chart canvas").count(), 1);
  // A metric only one run logs: the other is named as not logging it.
  await page.getByLabel("metric").selectOption("reward");
  await page.getByText("Not logged by ppo-a.").waitFor();
  await page.getByLabel("metric").selectOption("objective/kl");

  // Events: a marker per event at its step, whose hover shows the message; the list has them too.
  const markers = page.locator("#metric-chart .event-marker");
  assert.equal(await markers.count(), 2);
  assert.deepEqual(await markers.evaluateAll((ms) => ms.map((m) => (m as HTMLElement).dataset.step)), ["4", "5"]);
  const xs = await markers.evaluateAll((ms) => ms.map((m) => m.getBoundingClientRect().x));
  assert.ok(xs[0]! < xs[1]!, "the later event is further right");
  await markers.nth(1).hover();
  const tip = page.locator(".event-tip");
  await tip.waitFor({ state: "visible" });
  assert.match((await tip.textContent())!, /ppo-a, step 5: length_jump 48 \(threshold 30\): response length jumped/);
  assert.equal(await page.locator("table.events tbody tr").count(), 2);
  await page.locator("table.events").getByText("KL rising faster than its trend").waitFor();

  // Samples: search, open one; its score and its step's KL; hostile completion stays text.
  await page.locator("#sample-run").selectOption({ label: "ppo-a" });
  await page.getByLabel("search samples").fill("dragon");
  const rows = page.locator("#samples tr.sample-row");
  await until("one matching sample", async () => (await count(page, "#samples tr.sample-row")) === 1);
  await rows.first().click();
  const detail = page.locator("#sample-detail");
  await detail.getByText("slept in a cave.").waitFor();
  assert.match((await detail.textContent())!, /score-1\.5/);
  assert.match((await detail.textContent())!, /KL \(the step's objective\/kl\)1\.5/); // step 1's objective/kl
  await page.getByLabel("search samples").fill("alert");
  await until("the hostile sample", async () => (await count(page, "#samples tr.sample-row")) === 1 && (await rows.first().textContent())!.includes("alert"));
  await rows.first().click();
  assert.equal(await detail.locator("pre.completion").textContent(), HOSTILE);
  assert.equal(await page.locator("#samples script, #samples img").count(), 0, "model text must not create elements");
  await page.getByLabel("search samples").fill("");
  await page.locator("#sample-step").selectOption("5");
  await until("step 5's samples", async () => (await count(page, "#samples tr.sample-row")) === 2);

  // Reward-KL plane: ppo-a's training point (mean of its last 5 steps, 2..6: KL 1.5 · 4 = 6, reward -2 + 0.25 · 4 = -1) and
  // grpo-b's two evaluations (KL 1 → -1.2, KL 2 → -0.2). By rising KL the rewards are -1.2, -0.2, -1: the
  // frontier is the two evaluations; ppo-a spent more KL for less reward.
  const plane = page.locator("table.plane tbody tr");
  assert.equal(await plane.count(), 3);
  const planeRows = await plane.evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll("td")).slice(0, 4).map((td) => td.textContent).join(" | ") + " | " + (tr as HTMLElement).dataset.frontier));
  assert.deepEqual(planeRows, [
    "grpo-b | eval step 2 (checkpoint-2/eval.json) | 1 | -1.2 | yes",
    "grpo-b | eval final (eval.json) | 2 | -0.2 | yes",
    "ppo-a | training, steps 2–6 | 6 | -1 | no",
  ]);
  assert.equal(await page.locator("#plane-chart canvas").count(), 1);
  // A point at each checkpoint too: ppo-a's checkpoint-3 is the mean of steps 1–3 (KL 3, reward -1.5).
  await page.getByLabel("a point at each checkpoint too").check();
  await until("the checkpoint's point", async () => (await plane.count()) === 4);
  assert.deepEqual(await plane.evaluateAll((trs) => trs.map((tr) => tr.querySelectorAll("td")[1]!.textContent)), [
    "eval step 2 (checkpoint-2/eval.json)", "eval final (eval.json)", "checkpoint-3: training, steps 1–3", "training, steps 2–6",
  ]);
  assert.equal(await plane.nth(2).locator("td").nth(3).textContent(), "-1.5");
  await page.getByLabel("a point at each checkpoint too").uncheck();

  // Rounds of the loop run.
  assert.equal(await page.locator('table.rounds[data-run="grpo-b"] tbody tr').count(), 2);
  assert.match((await page.locator("table.rounds thead").textContent())!, /^roundrm_accuracyrewardklwin_rate$/);

  // Live: half a line is not shown; its end and a new event are, within a poll or two.
  appendFileSync(join(runA, "metrics.jsonl"), JSON.stringify(ppoMetrics(7)).slice(0, 20));
  await page.waitForTimeout(2500);
  assert.equal(await lastStepOf(page, "ppo-a"), "6", "a half-written line is not a record");
  appendFileSync(join(runA, "metrics.jsonl"), JSON.stringify(ppoMetrics(7)).slice(20) + "\n");
  appendFileSync(join(runA, "events.jsonl"), jsonl([{ step: 7, monitor: "entropy_collapse", value: 2, threshold: 5, message: "policy entropy collapsed" }]));
  await until("step 7 on the chart", async () => (await attr(page, "#metric-chart", "data-last-steps")) === "7,5");
  assert.equal(await lastStepOf(page, "ppo-a"), "7");
  await until("the new event's marker", async () => (await count(page, "#metric-chart .event-marker")) === 3);
  await page.locator("table.events").getByText("policy entropy collapsed").waitFor();
  assert.equal(await page.locator("table.plane tbody tr").last().locator("td").nth(1).textContent(), "training, steps 3–7");

  // A resumed run rewrites its metrics through a rename: the page drops what it had and rereads.
  writeFileSync(join(runA, "metrics.jsonl.tmp"), jsonl(range(3).map(ppoMetrics)));
  renameSync(join(runA, "metrics.jsonl.tmp"), join(runA, "metrics.jsonl"));
  await until("the rewritten run", async () => (await lastStepOf(page, "ppo-a")) === "3");

  // Hiding a run takes it off the chart.
  await page.getByLabel("show grpo-b").uncheck();
  await until("one run on the chart", async () => (await attr(page, "#metric-chart", "data-runs")) === "ppo-a");

  assert.deepEqual(problems, []);
  await context.close();
});
