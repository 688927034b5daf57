// Projects and their items: creation, import, listing with progress.
import type { Kysely } from "kysely";
import type { CreateProjectRequest, ImportItem, Progress, Project, Prompt, Task, UpdateProjectRequest } from "../shared/schema.ts";
import { judgementByPosition } from "./answers.ts";
import { isUniqueViolation, type Store, type Tables } from "./db.ts";
import { HttpError, newId } from "./errors.ts";
import type { User } from "./users.ts";

export interface ProjectRow extends Omit<Project, "created_at" | "show_suggestions"> {
  created_at: number; item_count: number; complete_count: number; show_suggestions: number;
}

export const projectJson = (p: ProjectRow): Project => ({
  id: p.id, name: p.name, task: p.task as Task, overlap: p.overlap, guidelines: p.guidelines,
  gold_every: p.gold_every, show_suggestions: p.show_suggestions === 1, created_at: new Date(p.created_at).toISOString(),
});

export async function createProject(store: Store, req: Omit<Required<CreateProjectRequest>, "show_suggestions"> & { show_suggestions?: boolean }): Promise<Project> {
  const row: ProjectRow = {
    id: newId("p"), ...req, show_suggestions: req.show_suggestions ? 1 : 0, created_at: Date.now(), item_count: 0, complete_count: 0,
  };
  try {
    await store.db.insertInto("projects").values(row).execute();
  } catch (e) {
    if (isUniqueViolation(e)) throw new HttpError(409, `a project named ${JSON.stringify(req.name)} already exists`);
    throw e;
  }
  return projectJson(row);
}

export async function updateProject(store: Store, id: string, req: UpdateProjectRequest): Promise<Project> {
  const { numUpdatedRows } = await store.db.updateTable("projects").set({ show_suggestions: req.show_suggestions ? 1 : 0 })
    .where("id", "=", id).executeTakeFirstOrThrow();
  if (Number(numUpdatedRows) === 0) throw new HttpError(404, `no project ${JSON.stringify(id)}`);
  return projectJson(await getProject(store.db, id));
}

export async function getProject(db: Kysely<Tables>, id: string): Promise<ProjectRow> {
  const p = await db.selectFrom("projects").selectAll().where("id", "=", id).executeTakeFirst();
  if (!p) throw new HttpError(404, `no project ${JSON.stringify(id)}`);
  return p as ProjectRow;
}

export async function projectByName(store: Store, name: string): Promise<ProjectRow> {
  const p = await store.db.selectFrom("projects").selectAll().where("name", "=", name).executeTakeFirst();
  if (!p) throw new HttpError(404, `no project named ${JSON.stringify(name)}`);
  return p as ProjectRow;
}

export async function listProjects(store: Store): Promise<ProjectRow[]> {
  return (await store.db.selectFrom("projects").selectAll().orderBy("created_at").execute()) as ProjectRow[];
}

// Several thousand bound values per statement stays below SQLite's and PostgreSQL's parameter limits.
const CHUNK = 500;

// Item ids given twice in one import, or already in the project: refused with where each one is.
async function checkItemIds(store: Store, project: ProjectRow, items: ImportItem[], where: (n: number) => string): Promise<void> {
  const first = new Map<string, number>();
  items.forEach((it, n) => {
    if (it.id === undefined) return;
    const seen = first.get(it.id);
    if (seen !== undefined) throw new HttpError(409, `${where(n)}: item id ${JSON.stringify(it.id)} was already given at ${where(seen)}`);
    first.set(it.id, n);
  });
  const ids = [...first.keys()];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const taken = await store.db.selectFrom("items").select("external_id")
      .where("project_id", "=", project.id).where("external_id", "in", ids.slice(i, i + CHUNK)).executeTakeFirst();
    if (taken) {
      const id = taken.external_id!;
      throw new HttpError(409, `${where(first.get(id)!)}: item id ${JSON.stringify(id)} is already in project ${JSON.stringify(project.name)}`);
    }
  }
}

/** `where(n)` names items[n] in errors: "item #n+1" for the API, file:line for `feedback import`. */
export async function importItems(store: Store, project: ProjectRow, items: ImportItem[], where = (n: number) => `item #${n + 1}`): Promise<string[]> {
  const task = project.task as Task;
  const now = Date.now();
  const itemRows: Tables["items"][] = [];
  const responseRows: Tables["responses"][] = [];
  await checkItemIds(store, project, items, where);
  items.forEach((it, n) => {
    const at = `${where(n)}${it.id !== undefined ? ` (item ${JSON.stringify(it.id)})` : ""}`;
    if (task === "pairwise" && it.responses.length !== 2) throw new HttpError(400, `${at}: a pairwise project needs exactly 2 responses`);
    const id = newId("i");
    const responseIds = it.responses.map((text, position) => {
      const rid = newId("r");
      responseRows.push({ id: rid, item_id: id, position, text });
      return rid;
    });
    for (const [what, answer] of [["gold answer", it.gold], ["suggestion", it.suggestion]] as const) {
      if (!answer) continue;
      try { judgementByPosition(task, answer, responseIds, what); } catch (e) { throw new HttpError(400, `${at}: ${(e as Error).message}`); }
    }
    itemRows.push({
      id, project_id: project.id, external_id: it.id ?? null, seq: n, prompt: JSON.stringify(it.prompt satisfies Prompt),
      gold: it.gold ? JSON.stringify(it.gold) : null, is_gold: it.gold ? 1 : 0, answer_count: 0, open: 1, created_at: now,
      suggestion: it.suggestion ? JSON.stringify(it.suggestion) : null, policy: it.policy ?? null,
    });
  });
  try {
    await store.db.transaction().execute(async (trx) => {
      const { max } = await trx.selectFrom("items").select((eb) => eb.fn.max("seq").as("max"))
        .where("project_id", "=", project.id).executeTakeFirstOrThrow();
      const base = max === null ? 0 : Number(max) + 1;
      for (const r of itemRows) r.seq += base;
      for (let i = 0; i < itemRows.length; i += CHUNK) await trx.insertInto("items").values(itemRows.slice(i, i + CHUNK)).execute();
      for (let i = 0; i < responseRows.length; i += CHUNK) await trx.insertInto("responses").values(responseRows.slice(i, i + CHUNK)).execute();
      const added = itemRows.filter((r) => r.is_gold === 0).length;
      await trx.updateTable("projects").set((eb) => ({ item_count: eb("item_count", "+", added) })).where("id", "=", project.id).execute();
    });
  } catch (e) {
    // An import that ran at the same time took one of the ids after checkItemIds looked.
    if (isUniqueViolation(e)) throw new HttpError(409, "an item id is already used in this project (given by an import that ran at the same time)");
    throw e;
  }
  return itemRows.map((r) => r.id);
}

// `answered` may be passed in by a caller that has just counted it.
export async function progressOf(db: Kysely<Tables>, project: ProjectRow, user: User, answered?: number): Promise<Progress> {
  const mine = db.selectFrom("answers as a").select((eb) => eb.fn.countAll<number>().as("n")).where("a.project_id", "=", project.id).where("a.labeler_id", "=", user.id);
  answered ??= Number((await mine.executeTakeFirstOrThrow()).n);
  const answeredOpen = (await mine.where("a.item_open", "=", 1).executeTakeFirstOrThrow()).n;
  return {
    answered, remaining: project.item_count - project.complete_count - Number(answeredOpen),
    total_items: project.item_count, complete_items: project.complete_count,
  };
}
