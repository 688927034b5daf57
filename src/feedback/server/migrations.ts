// Schema migrations, run on every start (Kysely's Migrator records what ran and locks against
// concurrent starts). Append new migrations; never edit one that has shipped.
import { Kysely, Migrator, type Migration } from "kysely";

export const migrations: Record<string, Migration> = {
  "0001_initial": {
    async up(db: Kysely<any>) {
      await db.schema.createTable("users")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull().unique())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("token_hash", "text", (c) => c.notNull().unique())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createTable("projects")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull().unique())
        .addColumn("task", "text", (c) => c.notNull())
        .addColumn("overlap", "integer", (c) => c.notNull())
        .addColumn("guidelines", "text", (c) => c.notNull())
        .addColumn("gold_every", "integer", (c) => c.notNull())
        // Non-gold items, and those that reached the overlap: counting them per request is O(items).
        .addColumn("item_count", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("complete_count", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createTable("items")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id"))
        .addColumn("external_id", "text")
        .addColumn("seq", "bigint", (c) => c.notNull())
        .addColumn("prompt", "text", (c) => c.notNull())
        .addColumn("gold", "text")
        .addColumn("is_gold", "integer", (c) => c.notNull())
        .addColumn("answer_count", "integer", (c) => c.notNull())
        // 1 while answer_count < overlap: /next and progress then read only open items off the index.
        .addColumn("open", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addUniqueConstraint("items_project_external", ["project_id", "external_id"])
        .execute();
      await db.schema.createIndex("items_next").on("items").columns(["project_id", "is_gold", "open", "seq"]).execute();
      await db.schema.createTable("responses")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("item_id", "text", (c) => c.notNull().references("items.id"))
        .addColumn("position", "integer", (c) => c.notNull())
        .addColumn("text", "text", (c) => c.notNull())
        .addUniqueConstraint("responses_item_position", ["item_id", "position"])
        .execute();
      await db.schema.createTable("assignments")
        .addColumn("item_id", "text", (c) => c.notNull().references("items.id"))
        .addColumn("labeler_id", "text", (c) => c.notNull().references("users.id"))
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("shown_order", "text", (c) => c.notNull())
        .addColumn("served_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("assignments_pk", ["item_id", "labeler_id"])
        .execute();
      await db.schema.createIndex("assignments_labeler").on("assignments").columns(["labeler_id", "project_id"]).execute();
      await db.schema.createTable("answers")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id"))
        .addColumn("item_id", "text", (c) => c.notNull().references("items.id"))
        .addColumn("labeler_id", "text", (c) => c.notNull().references("users.id"))
        .addColumn("request_id", "text", (c) => c.notNull())
        .addColumn("skip", "integer", (c) => c.notNull())
        .addColumn("ranking", "text")
        .addColumn("ties", "text")
        .addColumn("ratings", "text")
        .addColumn("rationale", "text")
        .addColumn("shown_order", "text", (c) => c.notNull())
        .addColumn("served_at", "bigint", (c) => c.notNull())
        .addColumn("answered_at", "bigint", (c) => c.notNull())
        // Idempotency and one answer per labeler per item are enforced by the database itself.
        .addUniqueConstraint("answers_labeler_request", ["labeler_id", "request_id"])
        .addUniqueConstraint("answers_item_labeler", ["item_id", "labeler_id"])
        .execute();
      await db.schema.createIndex("answers_project").on("answers").columns(["project_id", "labeler_id"]).execute();
    },
  },
  // A labeler's progress counts their answers on items still open; joining every answer they ever
  // gave to its item made each /next O(their history). The flag is kept on the answer instead.
  "0002_answers_item_open": {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("answers").addColumn("item_open", "integer", (c) => c.notNull().defaultTo(0)).execute();
      await db.updateTable("answers").set({ item_open: 1 })
        .where("item_id", "in", db.selectFrom("items").select("id").where("open", "=", 1).where("is_gold", "=", 0)).execute();
      await db.schema.dropIndex("answers_project").execute();
      await db.schema.createIndex("answers_progress").on("answers").columns(["project_id", "labeler_id", "item_open"]).execute();
    },
  },
  // Tokens that can be revoked, rotated and expire, users that can be disabled (their answers
  // stay: deleting a user who answered would break the answers' foreign key), and when each token
  // was last used. All null for existing users: active, no expiry, not used yet.
  "0003_token_lifecycle": {
    async up(db: Kysely<any>) {
      for (const column of ["token_expires_at", "token_revoked_at", "disabled_at", "last_used_at"]) {
        await db.schema.alterTable("users").addColumn(column, "bigint").execute();
      }
    },
  },
  // AI suggestions on items (shown to labelers only where the project says so) and the policy that
  // wrote each item. Existing projects keep suggestions hidden; existing items have neither.
  "0004_suggestions_and_policy": {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("projects").addColumn("show_suggestions", "integer", (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable("items").addColumn("suggestion", "text").execute();
      await db.schema.alterTable("items").addColumn("policy", "text").execute();
    },
  },
};

export async function migrate(db: Kysely<any>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error || failed) {
    throw new Error(`database migration ${failed?.migrationName ?? ""} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}
