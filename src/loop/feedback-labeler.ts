// People as the loop's labeler, through the feedback server's HTTP API (src/feedback/server/app.ts):
// a pairwise project per round, named `<project_prefix>-round-N (<policy>)` so the policy that wrote
// the items is on the project, each item's id the comparison's id; then polling until every item
// reached its overlap (or `min_labels` items did, or the deadline passed), and the labels exported
// through the API (every labeler's answer, aggregate=all). Each item carries the policy that wrote
// it and, when the config asks for them, the AI judge's verdict as its suggestion (shown to the
// labelers or only compared with them in the project's stats). The answers live in the server's
// database, so a loop killed while people label loses nothing: on resume it finds the project by
// name and exports again.
import type { ImportItem, ProjectDetail, ProjectSummary, Suggestion } from "../feedback/shared/schema.ts";
import { InputError } from "../io/errors.ts";
import { labeled, type Comparison, type LabeledComparison } from "./comparisons.ts";
import type { LabelerConfig } from "./config.ts";
import type { JudgeVerdict } from "./judge-labeler.ts";

/** The feedback server refused or failed a request (the method, path, status and its message). */
export class FeedbackServerError extends InputError {}

type PeopleConfig = Extract<LabelerConfig, { type: "people" }>;

/** The env variable that carries the admin token when the config does not (keeps it out of files). */
export const API_KEY_ENV = "RLHF_FEEDBACK_API_KEY";
/** The env variable that overrides labeler.url (a server that moved, or one on a port chosen at start). */
export const URL_ENV = "RLHF_FEEDBACK_URL";

/** `verdicts`: the AI judge's, sent as suggestions (config.suggestions); comparisons without one get none. */
export async function labelByPeople(config: PeopleConfig, comparisons: Comparison[], round: number, say: (line: string) => void, verdicts: JudgeVerdict[] = []): Promise<LabeledComparison[]> {
  if (comparisons.length === 0) return [];
  const key = config.api_key ?? process.env[API_KEY_ENV];
  const url = process.env[URL_ENV]?.replace(/\/+$/, "") ?? config.url;
  if (!key) throw new FeedbackServerError(`labeler people: an admin API token is needed (labeler.api_key in the config, or ${API_KEY_ENV})`);
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    let res: Response;
    try {
      res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new FeedbackServerError(`feedback server ${url}: ${method} ${path} failed (${(err as Error).message})`);
    }
    const text = await res.text();
    if (!res.ok) throw new FeedbackServerError(`feedback server ${url}: ${method} ${path} answered ${res.status} ${text.slice(0, 300)}`);
    return (res.headers.get("content-type")?.includes("json") && !path.includes("/export") ? JSON.parse(text) : text) as T;
  };

  const name = `${config.project_prefix}-round-${round} (${comparisons[0]!.policy})`;
  let project = (await call<ProjectSummary[]>("GET", "/api/projects")).find((p) => p.name === name);
  if (!project) {
    const created = await call<{ id: string }>("POST", "/api/projects", { name, task: "pairwise", overlap: 1, show_suggestions: config.suggestions === "shown" });
    project = await call<ProjectDetail>("GET", `/api/projects/${created.id}`);
  }
  // The import is one request (one transaction): a project has all the round's items or none.
  if (project.progress.total_items === 0) {
    const byId = new Map(verdicts.map((v) => [v.id, v]));
    await call("POST", `/api/projects/${project.id}/items`, comparisons.map((c): ImportItem => {
      const verdict = byId.get(c.id);
      return { id: c.id, prompt: c.prompt, responses: c.responses, policy: c.policy, ...(verdict ? { suggestion: suggestionOf(verdict, c) } : {}) };
    }));
    say(`round ${round}: ${comparisons.length} comparisons in feedback project "${name}" at ${url}`);
  }
  const deadline = config.deadline_minutes !== undefined ? Date.parse(project.created_at) + config.deadline_minutes * 60_000 : Infinity;
  const wanted = Math.min(config.min_labels ?? comparisons.length, comparisons.length);
  let reported = -1;
  for (;;) {
    const { progress } = await call<ProjectDetail>("GET", `/api/projects/${project.id}`);
    if (progress.complete_items >= wanted) break;
    if (Date.now() >= deadline) {
      say(`round ${round}: the deadline passed with ${progress.complete_items} of ${progress.total_items} items labeled`);
      break;
    }
    if (progress.complete_items !== reported) say(`round ${round}: ${progress.complete_items}/${wanted} items labeled`);
    reported = progress.complete_items;
    await new Promise((resolve) => setTimeout(resolve, config.poll_seconds * 1000));
  }
  const exported = await call<string>("GET", `/api/projects/${project.id}/export?format=preference&aggregate=all`);
  return peopleLabels(exported, comparisons, round);
}

/** A judge's verdict as the feedback app's suggestion, by response position; a tie is a tied ranking. */
export function suggestionOf(v: JudgeVerdict, c: Comparison): Suggestion {
  const rationale = v.rationale?.ab ?? v.rationale?.ba ?? undefined; // the order in which the chosen response was shown as A
  return {
    ranking: v.chosen === c.responses[0] ? [0, 1] : [1, 0], ...(v.tie ? { ties: [[0, 1]] } : {}),
    confidence: v.confidence, judge: fitText(v.judge, 200), ...(rationale ? { rationale: fitText(rationale, 10_000) } : {}),
  };
}

// Model text as the app's text fields take it (one refused field would refuse the whole round's
// import): no NUL, no lone surrogate, at most `max` UTF-16 units without splitting a pair.
function fitText(s: string, max: number): string {
  const t = s.replace(/\u0000/g, "").replace(/\p{Cs}/gu, "\uFFFD");
  return t.length > max ? t.slice(0, max).replace(/[\uD800-\uDBFF]$/, "") : t;
}

/** The export's lines (one per answer) as the loop's labeled comparisons, matched by item id. */
export function peopleLabels(exported: string, comparisons: Comparison[], round: number): LabeledComparison[] {
  const byId = new Map(comparisons.map((c) => [c.id, c]));
  const out: LabeledComparison[] = [];
  for (const line of exported.split("\n")) {
    if (line.trim() === "") continue;
    const record = JSON.parse(line) as { external_id?: string; chosen: unknown; labeler?: string };
    const c = byId.get(record.external_id ?? "");
    if (!c) continue;
    const chosenText = typeof record.chosen === "string" ? record.chosen : (record.chosen as { content: string }[])[0]!.content;
    out.push(labeled(c, chosenText === c.responses[0] ? 0 : 1, `people:${record.labeler ?? "?"}`, round));
  }
  return out;
}
