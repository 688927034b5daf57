// Admin pages: create projects and list them with progress; per project, import items, watch
// agreement and download the export.
import { z } from "zod";
import {
  EXPORT_AGGREGATES, EXPORT_FORMATS, ImportItem, INTEROP_TOOLS, TASKS,
  type ImportItemsRequest, type ProjectDetail, type ProjectStats, type Task,
} from "../shared/schema.ts";
import { api } from "./api.ts";
import { h, percent, setChildren, statusLine } from "./dom.ts";
import { renderMarkdown } from "./markdown.ts";
import { href, type PageContext } from "./routes.ts";

const TASK_HELP: Record<Task, string> = {
  pairwise: "pairwise: A / B / tie over exactly 2 responses",
  ranking: "ranking: order 2 or more responses, ties allowed",
  rating: "rating: a 1–7 score per response",
};

const field = (id: string, label: string, input: HTMLElement, hint?: string) =>
  h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null);

const suggestionsToggle = (input: HTMLInputElement) => h("div", { class: "field" },
  h("label", { class: "inline", for: input.id }, input, "Show AI suggestions to labelers"),
  h("p", { class: "hint" }, "Items imported with a suggestion (an AI judge's verdict) show it above the answer buttons. Off by default: a visible suggestion anchors people to it."));

export async function adminHomePage(root: HTMLElement, _ctx: PageContext) {
  const projects = await api.projects();
  const name = h("input", { id: "project-name", required: true, maxlength: 200 });
  const task = h("select", { id: "project-task" }, ...TASKS.map((t) => h("option", { value: t }, TASK_HELP[t])));
  const overlap = h("input", { id: "project-overlap", type: "number", min: 1, max: 100, value: 2, required: true, "aria-describedby": "project-overlap-hint" });
  const guidelines = h("textarea", { id: "project-guidelines", rows: 6, "aria-describedby": "project-guidelines-hint" });
  const showSuggestions = h("input", { id: "project-show-suggestions", type: "checkbox" });
  const status = statusLine();
  const create = h("button", { type: "submit", class: "primary" }, "Create project");
  const form = h("form", { class: "card", "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, "New project"),
    field("project-name", "Name", name),
    field("project-task", "Task", task),
    field("project-overlap", "Labelers per item", overlap, "How many different labelers answer each item (2+ to measure agreement)."),
    field("project-guidelines", "Guidelines (markdown)", guidelines, "Shown to labelers above every item."),
    suggestionsToggle(showSuggestions),
    create, status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    create.disabled = true;
    try {
      const p = await api.createProject({
        name: name.value, task: task.value as Task, overlap: Number(overlap.value), guidelines: guidelines.value, show_suggestions: showSuggestions.checked,
      });
      location.hash = href.adminProject(p.id);
    } catch (err) {
      status.show(`Could not create the project: ${(err as Error).message}`, "error");
      create.disabled = false;
    }
  });

  const rows = projects.map((p) => {
    const { total_items, complete_items } = p.progress;
    return h("tr", {},
      h("th", { scope: "row" }, h("a", { href: href.adminProject(p.id) }, p.name)),
      h("td", {}, p.task), h("td", {}, p.overlap),
      h("td", {}, h("progress", { value: complete_items, max: Math.max(1, total_items), "aria-label": `${p.name}: ${complete_items} of ${total_items} items complete` }),
        ` ${complete_items} / ${total_items} complete`));
  });
  setChildren(root,
    h("h1", {}, "Projects"),
    projects.length
      ? h("table", {},
          h("thead", {}, h("tr", {}, ...["Project", "Task", "Labelers per item", "Items"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, ...rows))
      : h("p", {}, "No projects yet."),
    form);
}

// Checked here as well as on the server so that a mistake points at its line in the file.
function parseJsonl(text: string): ImportItemsRequest {
  const items: ImportItemsRequest = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      throw new Error(`line ${i + 1}: not JSON (${(e as Error).message})`);
    }
    const r = ImportItem.safeParse(json);
    if (!r.success) throw new Error(`line ${i + 1}: ${z.prettifyError(r.error)}`);
    items.push(r.data);
  });
  if (!items.length) throw new Error("no items: paste or choose a JSONL file with one item per line");
  return items;
}

// A Label Studio or Argilla export: one JSON array (Argilla's may be JSON lines); the server checks each record.
function parseToolFile(text: string): unknown[] {
  const body = text.trim();
  try {
    const json: unknown = body.startsWith("[") ? JSON.parse(body) : body.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    if (Array.isArray(json) && json.length) return json;
  } catch (e) {
    throw new Error(`not JSON (${(e as Error).message})`);
  }
  throw new Error("no records: paste or choose the tool's JSON export (an array)");
}

function importForm(project: ProjectDetail, onImported: () => void): HTMLElement {
  // Label Studio and Argilla hold pairwise and ranking answers only (docs/feedback-interop.md).
  const tools = project.task === "rating" ? [] : INTEROP_TOOLS;
  const source = h("select", { id: "import-source" }, h("option", { value: "" }, "items as JSON lines"),
    ...tools.map((t) => h("option", { value: t }, t === "label-studio" ? "Label Studio tasks, with annotations" : "Argilla records, with responses")));
  const text = h("textarea", { id: "import-text", rows: 6, spellcheck: "false", "aria-describedby": "import-text-hint",
    placeholder: '{"prompt": "…", "responses": ["…", "…"]}' });
  const file = h("input", { id: "import-file", type: "file", accept: ".jsonl,.json,.ndjson,application/x-ndjson,text/plain" });
  const status = statusLine();
  const submit = h("button", { type: "submit", class: "primary" }, "Import items");
  const form = h("form", { class: "card", "aria-labelledby": "import-title" },
    h("h2", { id: "import-title" }, "Import items"),
    field("import-text", "Paste JSON lines", text,
      `One item per line: {"id"?, "prompt": text or [{"role", "content"}], "responses": [texts], "suggestion"?, "policy"?}${project.task === "pairwise" ? ", exactly 2 responses each" : ""}.`),
    field("import-file", "…or upload a .jsonl file", file),
    ...(tools.length ? [field("import-source", "Format", source)] : []),
    submit, status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const chosen = file.files?.[0];
      const input = chosen ? await chosen.text() : text.value;
      const tool = INTEROP_TOOLS.find((t) => t === source.value);
      if (tool) {
        const r = await api.importTool(project.id, tool, parseToolFile(input));
        status.show(`Imported ${r.imported} items and ${r.answers} answers.`, "ok");
      } else {
        const items = parseJsonl(input);
        status.show(`Importing ${items.length} items…`);
        const { imported } = await api.importItems(project.id, items);
        status.show(`Imported ${imported} items.`, "ok");
      }
      text.value = "";
      file.value = "";
      onImported();
    } catch (err) {
      status.show(`Nothing imported: ${(err as Error).message}`, "error");
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

const AGREEMENT_NAMES: Record<ProjectStats["agreement"]["metric"], string> = {
  fleiss_kappa: "Fleiss' κ",
  krippendorff_alpha_ordinal: "Krippendorff's α (ordinal)",
  krippendorff_alpha_interval: "Krippendorff's α (interval)",
};
const num = (x: number | null, digits = 2) => (x === null ? "–" : x.toFixed(digits));

function statsView(s: ProjectStats): HTMLElement {
  const p = s.progress;
  const pair = (term: string, value: string, hint?: string) => [h("dt", {}, term), h("dd", {}, value, hint ? h("span", { class: "hint" }, ` ${hint}`) : null)];
  return h("div", { class: "stats" },
    h("dl", { class: "numbers" },
      ...pair("Items complete", `${p.complete_items} / ${p.total_items}`, `(${s.overlap} ${s.overlap === 1 ? "labeler" : "labelers"} each)`),
      ...pair("Answers", String(p.answers), `(${p.skips} skipped)`),
      ...pair("Gold items", String(p.gold_items)),
      ...pair(`Agreement: ${AGREEMENT_NAMES[s.agreement.metric]}`, num(s.agreement.value),
        s.agreement.value === null ? "(needs items with 2+ answers that vary)" : `(over ${s.agreement.items} items)`),
      ...pair("Median time per answer", s.median_seconds === null ? "–" : `${s.median_seconds.toFixed(1)} s`),
      ...pair("First-shown response wins", percent(s.position_bias.first_shown_win_rate),
        s.position_bias.p_value === null ? "" : `(p = ${num(s.position_bias.p_value, 3)} over ${s.position_bias.pairs} pairs; 50% is unbiased)`),
      ...(s.ai_agreement.suggested_items === 0 ? [] : pair("AI suggestions vs people: Cohen's κ", num(s.ai_agreement.cohen_kappa), s.ai_agreement.pairs === 0
        ? `(${s.ai_agreement.suggested_items} items have a suggestion; none has a majority answer yet)`
        : `(agree on ${percent(s.ai_agreement.agreement)} of ${s.ai_agreement.pairs} ${s.ai_agreement.pairs === 1 ? "pair" : "pairs"} over ${s.ai_agreement.items} items${s.ai_agreement.judges.length ? `; ${s.ai_agreement.judges.join(", ")}` : ""})`))),
    s.policies.length ? h("table", {},
      h("caption", {}, "Items by policy"),
      h("thead", {}, h("tr", {}, ...["Policy", "Items", "Complete", "Answers"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ...s.policies.map((p) => h("tr", {}, h("th", { scope: "row" }, p.policy), h("td", {}, p.items), h("td", {}, p.complete_items), h("td", {}, p.answers))))) : null,
    h("table", {},
      h("caption", {}, "Labelers"),
      h("thead", {}, h("tr", {}, ...["Labeler", "Answers", "Skips", "Agrees with majority", "Agrees with gold", "Median time"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, s.labelers.length ? null : h("tr", {}, h("td", { colspan: 6 }, "No answers yet.")), ...s.labelers.map((l) => h("tr", {},
        h("th", { scope: "row" }, l.name), h("td", {}, l.answers), h("td", {}, l.skips),
        h("td", {}, `${percent(l.majority_agreement)} `, h("span", { class: "hint" }, `(${l.majority_pairs} pairs)`)),
        h("td", {}, `${percent(l.gold_agreement)} `, h("span", { class: "hint" }, `(${l.gold_pairs} pairs)`)),
        h("td", {}, l.median_seconds === null ? "–" : `${l.median_seconds.toFixed(1)} s`))))));
}

function exportForm(project: ProjectDetail): HTMLElement {
  const formatLabels: Record<(typeof EXPORT_FORMATS)[number], string> = {
    preference: "preference pairs (prompt, chosen, rejected)", ranking: "ranking (prompt, responses, ranking)",
    "label-studio": "Label Studio tasks (JSON)", argilla: "Argilla records (JSON)",
  };
  // Label Studio and Argilla hold pairwise and ranking answers only.
  const formats = EXPORT_FORMATS.filter((f) => project.task !== "rating" || f === "preference" || f === "ranking");
  const format = h("select", { id: "export-format" }, ...formats.map((f) =>
    h("option", { value: f, selected: f === (project.task === "pairwise" ? "preference" : "ranking") }, formatLabels[f])));
  const aggregate = h("select", { id: "export-aggregate" }, ...EXPORT_AGGREGATES.map((a) =>
    h("option", { value: a }, a === "all" ? "every labeler's answer" : "majority vote per item")));
  const status = statusLine();
  const submit = h("button", { type: "submit", class: "primary" }, "Download export");
  const form = h("form", { class: "card", "aria-labelledby": "export-title" },
    h("h2", { id: "export-title" }, "Export"),
    h("div", { class: "row" }, field("export-format", "Format", format), field("export-aggregate", "Answers", aggregate)),
    submit, status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const f = format.value as (typeof EXPORT_FORMATS)[number], a = aggregate.value as (typeof EXPORT_AGGREGATES)[number];
      // A plain link cannot carry the bearer token, so fetch the lines and hand the browser a blob.
      const text = await api.exportLines(project.id, { format: f, aggregate: a });
      const whole = f === "label-studio" || f === "argilla"; // one JSON array, every labeler's answer
      const lines = whole ? (JSON.parse(text) as unknown[]).length : text.split("\n").filter(Boolean).length;
      const link = h("a", { href: URL.createObjectURL(new Blob([text], { type: whole ? "application/json" : "application/x-ndjson" })),
        download: `${project.name.replace(/[^\w.-]+/g, "_")}-${f}${whole ? ".json" : `-${a}.jsonl`}` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      status.show(`Downloaded ${lines} ${whole ? "records" : "lines"}.`, "ok");
    } catch (err) {
      status.show(`Export failed: ${(err as Error).message}`, "error");
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// Whether labelers see the items' suggestions; saved as soon as it is switched.
function settingsForm(project: ProjectDetail): HTMLElement {
  const show = h("input", { id: "settings-show-suggestions", type: "checkbox", checked: project.show_suggestions });
  const status = statusLine();
  show.addEventListener("change", async () => {
    show.disabled = true;
    try {
      const p = await api.updateProject(project.id, { show_suggestions: show.checked });
      status.show(p.show_suggestions ? "Labelers now see suggestions." : "Suggestions are now hidden from labelers.", "ok");
    } catch (err) {
      show.checked = !show.checked;
      status.show(`Not saved: ${(err as Error).message}`, "error");
    } finally {
      show.disabled = false;
    }
  });
  return h("section", { class: "card", "aria-labelledby": "settings-title" }, h("h2", { id: "settings-title" }, "Settings"), suggestionsToggle(show), status);
}

export async function adminProjectPage(root: HTMLElement, _ctx: PageContext, projectId: string) {
  const project = await api.project(projectId);
  const statsArea = h("div", {}, statsView(await api.stats(projectId)));
  const refresh = h("button", { type: "button" }, "Refresh");
  const refreshStats = async () => {
    refresh.disabled = true;
    try {
      statsArea.replaceChildren(statsView(await api.stats(projectId)));
    } catch (e) {
      statsArea.replaceChildren(h("p", { class: "status", "data-kind": "error" }, `Could not load stats: ${(e as Error).message}`));
    } finally {
      refresh.disabled = false;
    }
  };
  refresh.addEventListener("click", () => void refreshStats());
  setChildren(root,
    h("p", {}, h("a", { href: href.admin }, "← All projects")),
    h("h1", {}, project.name),
    h("p", { class: "hint" }, `${TASK_HELP[project.task]} · ${project.overlap} ${project.overlap === 1 ? "labeler" : "labelers"} per item · gold every ${project.gold_every}th item · id `, h("code", {}, project.id)),
    project.guidelines.trim()
      ? h("details", { class: "guidelines card" }, h("summary", {}, "Guidelines"), h("div", { class: "markdown" }, renderMarkdown(project.guidelines)))
      : null,
    h("section", { class: "card", "aria-labelledby": "stats-title" },
      h("div", { class: "title-row" }, h("h2", { id: "stats-title" }, "Progress and agreement"), refresh),
      statsArea),
    settingsForm(project),
    importForm(project, () => void refreshStats()),
    exportForm(project),
  );
}
