// Work labeled in another tool (Label Studio, Argilla), in the app's own terms: items as
// `feedback import` takes them, and each annotator's judgement by response position. The format
// modules parse into this and render from it; this module stores it and reads it back.
import { ImportItem, type Task } from "../../shared/schema.ts";
import { InputError } from "../../../io/errors.ts";
import { validateJudgement } from "../answers.ts";
import type { Store, Tables } from "../db.ts";
import { newId } from "../errors.ts";
import { importItems, type ProjectRow } from "../projects.ts";
import { loadProject } from "../stats.ts";
import { addUser, revokeToken, USER_NAME } from "../users.ts";

/** One annotator's judgement of one item: response positions best first, ties as position pairs. */
export interface ForeignAnswer { annotator: string; ranking: number[]; ties: [number, number][] }
export interface ForeignItem { item: ImportItem; answers: ForeignAnswer[] }

/** A file in another tool's shape that we cannot read: the message names the record and the field. */
export class InteropError extends InputError {}

export type Json = Record<string, unknown>;
export const isObject = (x: unknown): x is Json => typeof x === "object" && x !== null && !Array.isArray(x);

export const INTEROP_TASKS: readonly Task[] = ["pairwise", "ranking"];

export function checkTask(task: Task, tool: string): void {
  if (!INTEROP_TASKS.includes(task)) throw new InteropError(`${tool} interop covers pairwise and ranking projects; this project's task is ${task}`);
}

// Annotators become labelers of the same name; new ones get no usable token (an admin can
// `feedback user rotate NAME` to let them sign in), so importing never hands out access.
async function labelerIds(store: Store, names: string[]): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  for (const name of new Set(names)) {
    let row = await store.db.selectFrom("users").select(["id"]).where("name", "=", name).executeTakeFirst();
    if (!row) {
      await addUser(store, name, "labeler");
      await revokeToken(store, name);
      row = await store.db.selectFrom("users").select(["id"]).where("name", "=", name).executeTakeFirstOrThrow();
    }
    ids.set(name, row.id);
  }
  return ids;
}

/** Imports the items, then their answers by named annotators (so stats and exports count them). */
export async function importForeign(store: Store, project: ProjectRow, records: ForeignItem[], where: (n: number) => string): Promise<{ items: number; answers: number }> {
  const task = project.task as Task;
  // Everything is checked before anything is written, so a bad file leaves the project as it was.
  records.forEach((r, n) => {
    // The same limits as `feedback import` and POST .../items (text length, NUL, 2-16 responses).
    const parsed = ImportItem.safeParse(r.item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.length ? `${issue.path.join(".")}: ` : "";
      throw new InteropError(`${where(n)}: ${field.replace(/^responses\.(\d+)/, (_, i) => `response ${Number(i) + 1}`)}${issue.message}`);
    }
    if (task === "pairwise" && r.item.responses.length !== 2) throw new InteropError(`${where(n)}: a pairwise project needs exactly 2 responses, found ${r.item.responses.length}`);
  });
  records.forEach((r, n) => r.answers.forEach((a) => {
    if (!USER_NAME.test(a.annotator)) throw new InteropError(`${where(n)}: annotator ${JSON.stringify(a.annotator)} cannot be a user name here: use letters, digits, . _ - @`);
    const ids = r.item.responses.map((_, i) => String(i));
    try {
      validateJudgement(task, ids, { ranking: a.ranking.map(String), ties: a.ties.map(([x, y]) => [String(x), String(y)]), ratings: null });
    } catch (e) { throw new InteropError(`${where(n)}: annotator ${JSON.stringify(a.annotator)}: ${(e as Error).message}`); }
  }));
  // Items first: their checks (ids already in the project) are the ones a user's file may fail.
  const itemIds = await importItems(store, project, records.map((r) => r.item), where);
  const labelers = await labelerIds(store, records.flatMap((r) => r.answers.map((a) => a.annotator)));
  let answers = 0;
  await store.write(async (trx) => {
    const now = Date.now();
    for (const [n, r] of records.entries()) {
      if (r.answers.length === 0) continue;
      const itemId = itemIds[n]!;
      const responses = (await trx.selectFrom("responses").select("id").where("item_id", "=", itemId).orderBy("position").execute()).map((x) => x.id);
      const count = r.answers.length;
      // Answers given elsewhere count toward the overlap like answers given here.
      const open = count < project.overlap ? 1 : 0;
      const rows: Tables["answers"][] = r.answers.map((a) => ({
        id: newId("a"), project_id: project.id, item_id: itemId, labeler_id: labelers.get(a.annotator)!, request_id: `import:${itemId}`,
        skip: 0, ranking: JSON.stringify(a.ranking.map((i) => responses[i]!)),
        ties: a.ties.length ? JSON.stringify(a.ties.map(([x, y]) => [responses[x]!, responses[y]!])) : null,
        ratings: null, rationale: null, shown_order: JSON.stringify(responses), served_at: now, answered_at: now, item_open: open,
      }));
      await trx.insertInto("answers").values(rows).execute();
      await trx.updateTable("items").set({ answer_count: count, open }).where("id", "=", itemId).execute();
      if (!open) await trx.updateTable("projects").set((eb) => ({ complete_count: eb("complete_count", "+", 1) })).where("id", "=", project.id).execute();
      answers += count;
    }
  }, { durable: true });
  return { items: itemIds.length, answers };
}

/** Every non-gold item with its non-skip answers, by response position, in import order. */
export async function exportForeign(store: Store, project: ProjectRow): Promise<(ForeignItem & { external_id: string | null })[]> {
  const { items, answers } = await loadProject(store, project);
  const out: (ForeignItem & { external_id: string | null })[] = [];
  const byItem = new Map<string, typeof answers>();
  for (const a of answers) if (!a.skip && a.ranking) byItem.set(a.item_id, [...(byItem.get(a.item_id) ?? []), a]);
  for (const it of items.values()) {
    if (it.gold) continue;
    const pos = new Map(it.responses.map((r, i) => [r.id, i]));
    out.push({
      external_id: it.external_id,
      item: {
        ...(it.external_id !== null ? { id: it.external_id } : {}), prompt: it.prompt as ImportItem["prompt"], responses: it.responses.map((r) => r.text),
        ...(it.suggestion ? { suggestion: it.suggestion } : {}), ...(it.policy !== null ? { policy: it.policy } : {}),
      },
      answers: (byItem.get(it.id) ?? []).map((a) => ({
        annotator: a.labeler, ranking: a.ranking!.map((id) => pos.get(id)!), ties: (a.ties ?? []).map(([x, y]) => [pos.get(x)!, pos.get(y)!] as [number, number]),
      })),
    });
  }
  return out;
}
