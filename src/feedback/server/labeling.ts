// Labeling: which item a labeler gets next, and recording an answer exactly once.
//
// Invariant: an item's non-skip answers never exceed the project's overlap. A labeler who is
// served an item holds a lease on one of its slots until they answer or the lease expires, so
// concurrent labelers are spread over different items instead of racing for the last slot.
// Every read-decide-write runs in one transaction (store.write): on SQLite the single connection
// serializes them (concurrent ones share a commit, each in its own savepoint); on PostgreSQL the
// item row is locked (FOR UPDATE) and the counts re-read after locking.
import { randomInt } from "node:crypto";
import { sql, type Kysely, type Transaction } from "kysely";
import type { AnswerRequest, AnswerResponse, NextItem, Prompt, ShownSuggestion, Suggestion, Task } from "../shared/schema.ts";
import { judgementByPosition, validateJudgement } from "./answers.ts";
import type { User } from "./users.ts";
import { isUniqueViolation, type Store, type Tables } from "./db.ts";
import { HttpError, newId } from "./errors.ts";
import { getProject, progressOf, type ProjectRow } from "./projects.ts";

export const DEFAULT_LEASE_MS = 10 * 60_000;

type Trx = Transaction<Tables>;

function shuffled<T>(xs: T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

// The item with its project's task and overlap; on PostgreSQL the item row is locked.
const lockItem = async (store: Store, trx: Trx, itemId: string) => {
  let q = trx.selectFrom("items as i").innerJoin("projects as p", "p.id", "i.project_id")
    .selectAll("i").select(["p.task", "p.overlap"]).where("i.id", "=", itemId);
  if (store.dialect === "postgres") q = q.forUpdate("i");
  return q.executeTakeFirst();
};

// Slots taken on an item by answers and by other labelers' live leases.
async function slotsTaken(trx: Trx, item: Tables["items"], me: string, now: number): Promise<number> {
  const { n } = await trx.selectFrom("assignments").select((eb) => eb.fn.countAll<number>().as("n"))
    .where("item_id", "=", item.id).where("labeler_id", "!=", me).where("expires_at", ">", now).executeTakeFirstOrThrow();
  return item.answer_count + Number(n);
}

async function pickCandidate(store: Store, trx: Trx, project: ProjectRow, me: string, gold: boolean, now: number, tried: string[]) {
  let q = trx.selectFrom("items as i").select("i.id")
    .where("i.project_id", "=", project.id).where("i.is_gold", "=", gold ? 1 : 0)
    .where(({ not, exists, selectFrom }) => not(exists(
      selectFrom("answers as a").select("a.id").whereRef("a.item_id", "=", "i.id").where("a.labeler_id", "=", me))))
    .orderBy("i.seq").limit(1);
  if (tried.length) q = q.where("i.id", "not in", tried);
  if (!gold) {
    q = q.where("i.open", "=", 1).where(sql<boolean>`i.answer_count + (select count(*) from assignments s
      where s.item_id = i.id and s.expires_at > ${now}) < ${project.overlap}`);
  }
  // Concurrent labelers on PostgreSQL pass over items another transaction is leasing right now.
  if (store.dialect === "postgres") q = q.forUpdate().skipLocked();
  return (await q.executeTakeFirst())?.id;
}

// `responses` may be passed in by a caller that has just read them.
async function serve(trx: Trx, project: ProjectRow, user: User, itemId: string, order: string[], leaseExpires: number,
  answered?: number, responses?: { id: string; text: string; position: number }[]): Promise<NextItem> {
  const item = await trx.selectFrom("items").select(["id", "prompt", "suggestion"]).where("id", "=", itemId).executeTakeFirstOrThrow();
  responses ??= await trx.selectFrom("responses").select(["id", "text", "position"]).where("item_id", "=", itemId).execute();
  const texts = new Map(responses.map((r) => [r.id, r.text]));
  // The suggestion leaves the server only for projects that show it: hidden, it cannot anchor anyone.
  const suggestion = project.show_suggestions === 1 && item.suggestion !== null
    ? shownSuggestion(project.task as Task, JSON.parse(item.suggestion) as Suggestion, [...responses].sort((a, b) => a.position - b.position).map((r) => r.id))
    : undefined;
  return {
    id: item.id, project_id: project.id, prompt: JSON.parse(item.prompt) as Prompt, task: project.task as Task,
    responses: order.map((id) => ({ id, text: texts.get(id)! })),
    progress: await progressOf(trx, project, user, answered),
    lease_expires_at: new Date(leaseExpires).toISOString(),
    ...(suggestion ? { suggestion } : {}),
  };
}

function shownSuggestion(task: Task, s: Suggestion, responseIds: string[]): ShownSuggestion {
  const { ranking, ties, ratings } = judgementByPosition(task, s, responseIds, "suggestion");
  return { ranking, ties, ratings, confidence: s.confidence ?? null, judge: s.judge ?? null, rationale: s.rationale ?? null };
}

export async function nextItem(store: Store, user: User, projectId: string, leaseMs = DEFAULT_LEASE_MS): Promise<NextItem | null> {
  // A lease may be lost in a crash (the labeler just gets an item again): no fsync needed.
  return store.write(async (trx) => {
    const project = await getProject(trx, projectId);
    const now = Date.now();
    const expires = now + leaseMs;
    // Asking again before answering (a reload) returns the same item in the same order.
    const mine = await trx.selectFrom("assignments").selectAll()
      .where("labeler_id", "=", user.id).where("project_id", "=", project.id).executeTakeFirst();
    if (mine) {
      const item = (await lockItem(store, trx, mine.item_id))!;
      const stillMine = mine.expires_at > now || item.is_gold === 1 || (await slotsTaken(trx, item, user.id, now)) < project.overlap;
      if (stillMine) {
        await trx.updateTable("assignments").set({ expires_at: expires }).where("item_id", "=", mine.item_id).where("labeler_id", "=", user.id).execute();
        return serve(trx, project, user, mine.item_id, JSON.parse(mine.shown_order), expires);
      }
      await trx.deleteFrom("assignments").where("item_id", "=", mine.item_id).where("labeler_id", "=", user.id).execute();
    }
    const { answered } = await trx.selectFrom("answers").select((eb) => eb.fn.countAll<number>().as("answered"))
      .where("project_id", "=", project.id).where("labeler_id", "=", user.id).executeTakeFirstOrThrow();
    const goldTurn = Number(answered) % project.gold_every === project.gold_every - 1;
    let itemId = goldTurn ? await pickCandidate(store, trx, project, user.id, true, now, []) : undefined;
    const tried: string[] = [];
    while (!itemId) {
      const candidate = await pickCandidate(store, trx, project, user.id, false, now, tried);
      if (!candidate) return null;
      // SQLite has one connection, so the candidate query saw every lease. PostgreSQL: its snapshot
      // may predate a lease committed since; re-count under the lock.
      const free = store.dialect === "sqlite" || (await slotsTaken(trx, (await lockItem(store, trx, candidate))!, user.id, now)) < project.overlap;
      if (free) itemId = candidate;
      else tried.push(candidate);
    }
    const responses = await trx.selectFrom("responses").select(["id", "text", "position"]).where("item_id", "=", itemId).orderBy("position").execute();
    const order = shuffled(responses.map((r) => r.id));
    await trx.insertInto("assignments").values({
      item_id: itemId, labeler_id: user.id, project_id: project.id, shown_order: JSON.stringify(order), served_at: now, expires_at: expires,
    }).execute();
    return serve(trx, project, user, itemId, order, expires, Number(answered), responses);
  }, { durable: false });
}

const answerJson = (a: Tables["answers"], replayed: boolean): AnswerResponse => ({
  id: a.id, item_id: a.item_id, request_id: a.request_id, skip: a.skip === 1,
  ranking: a.ranking ? JSON.parse(a.ranking) : null, ties: a.ties ? JSON.parse(a.ties) : null,
  ratings: a.ratings ? JSON.parse(a.ratings) : null, rationale: a.rationale,
  shown_order: JSON.parse(a.shown_order), answered_at: new Date(a.answered_at).toISOString(), replayed,
});

async function replay(db: Kysely<Tables>, user: User, itemId: string, requestId: string): Promise<AnswerResponse | undefined> {
  const prior = await db.selectFrom("answers").selectAll().where("labeler_id", "=", user.id).where("request_id", "=", requestId).executeTakeFirst();
  return prior && replayOf(prior, itemId);
}

function replayOf(prior: Tables["answers"], itemId: string): AnswerResponse {
  if (prior.item_id !== itemId) throw new HttpError(409, "request_id was already used for another item");
  return answerJson(prior, true);
}

// Resolves to the answer and whether it was created now (false: a replay of the same request_id).
export async function submitAnswer(store: Store, user: User, itemId: string, req: AnswerRequest): Promise<AnswerResponse> {
  try {
    return await store.write(async (trx) => {
      const item = await lockItem(store, trx, itemId);
      if (!item) throw new HttpError(404, `no item ${JSON.stringify(itemId)}`);
      // This request_id answered before (a retry, or a twin that committed while this one waited
      // for the lock), or this labeler answered the item with another request_id.
      const prior = await trx.selectFrom("answers").selectAll().where("labeler_id", "=", user.id)
        .where((eb) => eb.or([eb("request_id", "=", req.request_id), eb("item_id", "=", itemId)])).execute();
      const twin = prior.find((a) => a.request_id === req.request_id);
      if (twin) return replayOf(twin, itemId);
      const lease = await trx.selectFrom("assignments").selectAll().where("item_id", "=", itemId).where("labeler_id", "=", user.id).executeTakeFirst();
      // The lease's shown order holds the item's response ids; without a lease the answer is refused below.
      const ids = lease ? (JSON.parse(lease.shown_order) as string[])
        : (await trx.selectFrom("responses").select("id").where("item_id", "=", itemId).execute()).map((r) => r.id);
      const j = validateJudgement(item.task as Task, ids, { skip: req.skip, ranking: req.ranking ?? null, ties: req.ties ?? null, ratings: req.ratings ?? null });
      if (prior.length) throw new HttpError(409, "you already answered this item");
      if (!lease) throw new HttpError(409, "this item was not assigned to you: get it from /next first");
      const now = Date.now();
      const counted = !j.skip && item.is_gold === 0;
      const open = counted ? item.answer_count + 1 < item.overlap : item.open === 1; // after this answer
      if (counted) {
        // A live lease holds a slot; an expired one only if nobody has taken the slot since.
        const full = item.answer_count >= item.overlap ||
          (lease.expires_at <= now && (await slotsTaken(trx, item, user.id, now)) >= item.overlap);
        if (full) throw new HttpError(409, "this item already has all the answers it needs (your lease expired)");
      }
      const row: Tables["answers"] = {
        id: newId("a"), project_id: item.project_id, item_id: itemId, labeler_id: user.id, request_id: req.request_id,
        skip: j.skip ? 1 : 0, ranking: j.ranking && JSON.stringify(j.ranking), ties: j.ties && JSON.stringify(j.ties),
        ratings: j.ratings && JSON.stringify(j.ratings), rationale: req.rationale ?? null,
        shown_order: lease.shown_order, served_at: lease.served_at, answered_at: now,
        item_open: item.is_gold === 0 && open ? 1 : 0,
      };
      await trx.insertInto("answers").values(row).execute();
      if (counted) {
        await trx.updateTable("items").set((eb) => ({ answer_count: eb("answer_count", "+", 1), open: open ? 1 : 0 })).where("id", "=", itemId).execute();
        if (!open) {
          await trx.updateTable("projects").set((eb) => ({ complete_count: eb("complete_count", "+", 1) })).where("id", "=", item.project_id).execute();
          await trx.updateTable("answers").set({ item_open: 0 }).where("item_id", "=", itemId).execute();
        }
      }
      await trx.deleteFrom("assignments").where("item_id", "=", itemId).where("labeler_id", "=", user.id).execute();
      return answerJson(row, false);
    }, { durable: true });
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
    // Lost a race on (labeler, request_id) with a request for another item.
    const prior = await replay(store.db, user, itemId, req.request_id);
    if (prior) return prior;
    throw new HttpError(409, "conflicting answer");
  }
}
