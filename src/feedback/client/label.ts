// The labeling page: guidelines, one item at a time, an answer widget per task, shortcuts.
// Prompts and responses are untrusted model text and only ever reach the page through h()'s
// text nodes; the guidelines are the one piece of markdown, sanitized in markdown.ts.
import type { AnswerRequest, NextItem, Progress, Prompt, ShownResponse } from "../shared/schema.ts";
import { LIKERT_MAX, LIKERT_MIN } from "../shared/schema.ts";
import { api, ApiError, newRequestId, submitWithRetry } from "./api.ts";
import { h, kbd, percent, setChildren, statusLine, type Child } from "./dom.ts";
import { renderMarkdown } from "./markdown.ts";
import { href, type PageContext } from "./routes.ts";

type Judgement = Omit<AnswerRequest, "request_id" | "rationale" | "skip">;

// What each task contributes: the response cards with their controls, a reading of the
// labeler's judgement (or why it is incomplete), its own keys, and the keys to list on screen.
interface Widget {
  body: HTMLElement;
  read(): Judgement | string;
  key(key: string): boolean;
  shortcuts: [string, string][];
}

const letter = (i: number) => String.fromCharCode(65 + i);

function promptView(prompt: Prompt): HTMLElement {
  if (typeof prompt === "string") return h("div", { class: "text" }, prompt);
  return h("ol", { class: "chat" }, ...prompt.map((m) =>
    h("li", { "data-role": m.role }, h("span", { class: "role" }, m.role), h("div", { class: "text" }, m.content))));
}

// An AI judge's verdict, in the letters this labeler sees; sent only by projects that show
// suggestions. The judge's rationale is model text like the responses: text nodes only.
function suggestionView(item: NextItem): HTMLElement | null {
  const s = item.suggestion;
  if (!s) return null;
  const name = new Map(item.responses.map((r, i) => [r.id, letter(i)]));
  const tied = (x: string, y: string) => (s.ties ?? []).some(([a, b]) => (a === x && b === y) || (a === y && b === x));
  let verdict: string;
  if (s.ratings) verdict = item.responses.map((r) => `${name.get(r.id)}: ${s.ratings![r.id]}`).join(", ");
  else if (item.task === "pairwise") verdict = s.ties?.length ? "a tie" : `Response ${name.get(s.ranking![0]!)} is better`;
  else verdict = s.ranking!.map((id, i) => (i === 0 ? "" : tied(s.ranking![i - 1]!, id) ? " = " : " > ") + name.get(id)).join("");
  return h("aside", { class: "suggestion card", "aria-label": "AI suggestion" },
    h("p", {}, h("strong", {}, "AI suggestion: "), verdict,
      s.confidence !== null ? ` (confidence ${percent(s.confidence)})` : null,
      s.judge ? h("span", { class: "hint" }, ` · ${s.judge}`) : null),
    s.rationale ? h("details", {}, h("summary", {}, "The judge's reasoning"), h("div", { class: "text" }, s.rationale)) : null);
}

function responseCard(i: number, r: ShownResponse, ...controls: Child[]): HTMLElement {
  return h("article", { class: "response", "aria-labelledby": `response-${i}` },
    h("h3", { id: `response-${i}` }, `Response ${letter(i)}`),
    h("div", { class: "text" }, r.text),
    ...controls);
}

function pairwise(item: NextItem): Widget {
  const [a, b] = item.responses as [ShownResponse, ShownResponse];
  const options = { A: "A is better", B: "B is better", tie: "Tie" } as const;
  const keys = { A: "1", B: "2", tie: "t" } as const;
  type Choice = keyof typeof options;
  let choice: Choice | null = null;
  const buttons = Object.fromEntries((Object.keys(options) as Choice[]).map((c) => {
    const button = h("button", { type: "button", class: "choice", "aria-pressed": "false" }, options[c], " ", kbd(keys[c]));
    button.addEventListener("click", () => choose(c));
    return [c, button];
  })) as Record<Choice, HTMLButtonElement>;
  function choose(c: Choice) {
    choice = c;
    for (const [k, button] of Object.entries(buttons)) button.setAttribute("aria-pressed", String(k === c));
  }
  return {
    body: h("div", {},
      h("div", { class: "responses pair" }, responseCard(0, a), responseCard(1, b)),
      h("div", { class: "choices", role: "group", "aria-label": "Which response is better?" }, buttons.A, buttons.tie, buttons.B)),
    read() {
      if (choice === "A") return { ranking: [a.id, b.id] };
      if (choice === "B") return { ranking: [b.id, a.id] };
      if (choice === "tie") return { ranking: [a.id, b.id], ties: [[a.id, b.id]] };
      return "Choose A, B or tie first.";
    },
    key(k) {
      const c = (Object.keys(keys) as Choice[]).find((c) => keys[c] === k.toLowerCase());
      if (c) choose(c);
      return c !== undefined;
    },
    shortcuts: [["1", "A is better"], ["2", "B is better"], ["t", "tie"]],
  };
}

// A rank per response; equal ranks are ties, which the server wants as adjacent id pairs.
function ranking(item: NextItem): Widget {
  const k = item.responses.length;
  const selects = item.responses.map((_, i) => h("select", { id: `rank-${i}` },
    h("option", { value: "" }, "–"), ...Array.from({ length: k }, (_, r) => h("option", { value: r + 1 }, String(r + 1)))));
  return {
    body: h("div", { class: "responses" }, ...item.responses.map((r, i) =>
      responseCard(i, r, h("p", { class: "rank" }, h("label", { for: `rank-${i}` }, `Rank of ${letter(i)} (1 = best)`), " ", selects[i])))),
    read() {
      const ranks = selects.map((s) => Number(s.value));
      if (ranks.some((r) => r === 0)) return "Give every response a rank (equal ranks mean a tie).";
      const order = item.responses.map((r, i) => ({ id: r.id, rank: ranks[i]! })).sort((x, y) => x.rank - y.rank);
      const ties: [string, string][] = [];
      for (let i = 1; i < order.length; i++) if (order[i]!.rank === order[i - 1]!.rank) ties.push([order[i - 1]!.id, order[i]!.id]);
      return { ranking: order.map((o) => o.id), ...(ties.length ? { ties } : {}) };
    },
    key: () => false,
    shortcuts: [],
  };
}

function rating(item: NextItem): Widget {
  const scale = Array.from({ length: LIKERT_MAX - LIKERT_MIN + 1 }, (_, i) => LIKERT_MIN + i);
  const groups = item.responses.map((_, i) => scale.map((v) => h("input", { type: "radio", name: `rating-${i}`, value: v, id: `rating-${i}-${v}` })));
  return {
    body: h("div", {},
      h("p", { class: "hint" }, `Rate each response from ${LIKERT_MIN} (very poor) to ${LIKERT_MAX} (excellent).`),
      h("div", { class: "responses" }, ...item.responses.map((r, i) => responseCard(i, r,
        h("fieldset", { class: "likert" },
          h("legend", {}, `Rating of ${letter(i)}`),
          ...groups[i]!.map((input, v) => h("label", { for: input.id }, input, String(scale[v])))))))),
    read() {
      const values = groups.map((g) => Number(g.find((x) => x.checked)?.value ?? 0));
      if (values.some((v) => v === 0)) return "Rate every response.";
      return { ratings: Object.fromEntries(item.responses.map((r, i) => [r.id, values[i]!])) };
    },
    key: () => false,
    shortcuts: [],
  };
}

const widgets = { pairwise, ranking, rating } satisfies Record<NextItem["task"], (item: NextItem) => Widget>;

export async function labelPage(root: HTMLElement, { signal }: PageContext, projectId: string) {
  const project = await api.project(projectId);
  const bar = h("progress", { max: 1, value: 0, "aria-labelledby": "progress-text" });
  const progressText = h("span", { id: "progress-text" });
  const itemArea = h("section", { class: "item", "aria-label": "Item" });
  setChildren(root,
    h("div", { class: "title-row" }, h("h1", {}, project.name), h("p", { class: "progress" }, bar, " ", progressText)),
    project.guidelines.trim()
      ? h("details", { class: "guidelines card", open: true }, h("summary", {}, "Guidelines"), h("div", { class: "markdown" }, renderMarkdown(project.guidelines)))
      : null,
    itemArea,
  );

  function showProgress(p: Progress) {
    bar.max = Math.max(1, p.answered + p.remaining);
    bar.value = p.answered;
    progressText.textContent = `Answered ${p.answered} · ${p.remaining} left`;
  }
  showProgress(project.progress);

  let item: NextItem | null = null;
  let widget: Widget | null = null;
  let busy = false;
  // The answer being saved and its request_id: sending the same answer again after a failure
  // reuses the id, so an attempt that did reach the server is replayed instead of refused.
  let pending: { body: string; requestId: string } | null = null;
  const status = statusLine();
  const rationale = h("textarea", { id: "rationale", rows: 2, maxlength: 10_000, placeholder: "Why? (optional)" });
  const submitButton = h("button", { type: "button", class: "primary" }, "Submit ", kbd("Enter"));
  const skipButton = h("button", { type: "button" }, "Skip ", kbd("s"));
  submitButton.addEventListener("click", () => void submit());
  skipButton.addEventListener("click", () => void send({ skip: true }));

  async function submit() {
    if (!widget) return;
    const judgement = widget.read();
    if (typeof judgement === "string") return status.show(judgement, "error");
    await send(judgement);
  }

  async function send(judgement: Judgement | { skip: true }) {
    if (!item || busy) return;
    const body: Omit<AnswerRequest, "request_id"> = { ...judgement, ...(rationale.value.trim() ? { rationale: rationale.value.trim() } : {}) };
    const key = JSON.stringify([item.id, body]);
    if (pending?.body !== key) pending = { body: key, requestId: newRequestId() };
    setBusy(true);
    status.show("Saving…");
    try {
      await submitWithRetry(item.id, { ...body, request_id: pending.requestId }, (attempt) =>
        status.show(`Network problem; trying again (attempt ${attempt + 1})…`, "error"));
      pending = null;
      await showNext("");
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        // Answered elsewhere, or the lease ran out and others filled the item: nothing to retry.
        pending = null;
        await showNext(`Not saved: ${e.message}. Here is the next item.`);
      } else {
        status.show(`Not saved: ${(e as Error).message}. Press Submit to try again.`, "error");
      }
    } finally {
      setBusy(false);
    }
  }

  function setBusy(b: boolean) {
    busy = b;
    submitButton.disabled = skipButton.disabled = b;
  }

  async function showNext(message: string) {
    let next: NextItem | null;
    try {
      next = await api.next(projectId);
    } catch (e) {
      const retry = h("button", { type: "button" }, "Try again");
      retry.addEventListener("click", () => void showNext(""));
      itemArea.replaceChildren(h("p", { class: "status", "data-kind": "error", role: "alert" }, `Could not load the next item: ${(e as Error).message}`), retry);
      return;
    }
    item = next;
    if (!next) {
      widget = null;
      showProgress((await api.project(projectId)).progress);
      setChildren(itemArea,
        h("h2", { tabindex: -1 }, "All done"),
        message ? h("p", { class: "status", "data-kind": "error" }, message) : null,
        h("p", {}, "There is nothing left for you in this project. Thank you!"),
        h("a", { href: href.home }, "Back to projects"));
      itemArea.querySelector("h2")!.focus();
      return;
    }
    widget = widgets[next.task](next);
    rationale.value = "";
    status.show(message, message ? "error" : "info");
    showProgress(next.progress);
    const keys: [string, string][] = [...widget.shortcuts, ["s", "skip"], ["Enter", "submit"], ["Ctrl+Enter", "submit from the rationale box"]];
    const heading = h("h2", { tabindex: -1 }, "Prompt");
    setChildren(itemArea,
      heading,
      h("div", { class: "prompt card" }, promptView(next.prompt)),
      suggestionView(next),
      widget.body,
      h("label", { for: "rationale" }, "Rationale (optional)"),
      rationale,
      h("div", { class: "actions" }, submitButton, skipButton),
      status,
      h("p", { class: "shortcuts" }, "Keyboard: ", ...keys.flatMap(([k, what], i) => [i ? " · " : "", kbd(k), ` ${what}`])),
    );
    heading.focus(); // announces the new item and takes focus out of the old rationale box
  }

  document.addEventListener("keydown", (e) => {
    if (!widget || busy || e.isComposing || e.defaultPrevented) return;
    const target = e.target instanceof HTMLElement ? e.target : null;
    const typing = target?.closest("input, textarea, select, [contenteditable]") != null;
    if (e.key === "Enter") {
      if (target?.closest("a, summary, button:not(.choice)")) return; // links, other buttons and folds (the guidelines, the judge's reasoning) keep their own Enter
      if (target?.tagName === "TEXTAREA" && !(e.ctrlKey || e.metaKey)) return;
      e.preventDefault();
      if (target?.classList.contains("choice")) target.click(); // Enter on a choice picks it and submits
      void submit();
      return;
    }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key.toLowerCase() === "s") {
      e.preventDefault();
      void send({ skip: true });
    } else if (widget.key(e.key)) {
      e.preventDefault();
    }
  }, { signal });

  await showNext("");
}
