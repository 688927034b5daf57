// The one schema module that the feedback server and the web UI both import.
// Every request body is parsed with these zod schemas on the server; response shapes are
// typed here too, so the client never guesses. Model outputs are untrusted text: the API
// returns them verbatim as JSON strings and the client must render them as text, never HTML.
//
// HTTP API (all under /api, all JSON, all need `Authorization: Bearer TOKEN`):
//   GET  /api/me                              any role   -> Me
//   GET  /api/projects                        any role   -> ProjectSummary[]  (labelers: every project, with their own progress)
//   POST /api/projects                        admin      CreateProjectRequest -> Project (201)
//   GET  /api/projects/:project               any role   -> ProjectDetail
//   PATCH /api/projects/:project              admin      UpdateProjectRequest -> Project
//   POST /api/projects/:project/items         admin      ImportItemsRequest -> ImportItemsResponse (201)
//   POST /api/projects/:project/import       admin      ?from=label-studio|argilla, ToolImportRequest -> ToolImportResponse (201)
//   GET  /api/projects/:project/next          labeler    -> NextItem, or 204 when nothing is left for this labeler
//   POST /api/items/:item/answers             labeler    AnswerRequest -> AnswerResponse (201 new, 200 replay of the same request_id)
//   GET  /api/projects/:project/stats         admin      -> ProjectStats
//   GET  /api/projects/:project/export        admin      ?format=preference|ranking&aggregate=all|majority -> JSON lines (application/x-ndjson);
//                                                        ?format=label-studio|argilla -> one JSON array (application/json)
//   GET  /healthz                             no token   -> {"ok": true} or 503 {"ok": false, "error"} when the database fails
// Errors are ErrorResponse `{"error": "..."}` with 400 (invalid), 401 (no, unknown, revoked or
// expired token, or a disabled user), 403 (wrong role), 404 (unknown project or item), 409
// (conflict: item full, already answered, request_id reused for another item, item not assigned),
// 413 (body too large for the route), 429 (too many failed sign-ins from this address; see
// Retry-After), 503/507 (database busy or disk full; retry later), 500 (a bug: the answer's
// request_id is in the server's log). Authentication and the size limit are checked before any
// of the body is read. Every answer has an x-request-id header.
import { z } from "zod";

export const ROLES = ["admin", "labeler"] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

// pairwise: A / B / tie / skip over exactly 2 responses; ranking: order K responses, ties allowed;
// rating: a 1..7 Likert score per response.
export const TASKS = ["pairwise", "ranking", "rating"] as const;
export const Task = z.enum(TASKS);
export type Task = z.infer<typeof Task>;

export const LIKERT_MIN = 1;
export const LIKERT_MAX = 7;

const MAX_TEXT = 200_000; // one prompt or response, in characters

// Every string a client sends (bodies, queries, path parameters) is one of these two, so both
// databases see the same strings: no NUL (PostgreSQL cannot store it, SQLite would keep it), no
// lone UTF-16 surrogate (not encodable as UTF-8: both would store U+FFFD instead), and a length cap.
const LONE_SURROGATE = /\p{Cs}/u; // with the u flag a well-formed pair is one code point, not Cs
export const Text = (max: number, min = 0) => z.string().min(min).max(max)
  .refine((s) => !s.includes("\u0000"), "NUL characters are not allowed")
  .refine((s) => !LONE_SURROGATE.test(s), "unpaired UTF-16 surrogates are not allowed (the text is not valid Unicode)");
// The server's own ids (projects, items, responses) and the labelers' request ids: a short
// alphabet, so a malformed one is a 400 before any query runs.
export const Id = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, "expected an id: 1-128 letters, digits, _ . : -");
const MAX_RESPONSES = 16;

export const ChatMessage = z.object({
  role: Text(64, 1),
  content: Text(MAX_TEXT),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

// A prompt is plain text or a list of chat messages (the `messages` convention of TRL datasets).
export const Prompt = z.union([Text(MAX_TEXT), z.array(ChatMessage).min(1).max(200)]);
export type Prompt = z.infer<typeof Prompt>;

export const CreateProjectRequest = z.strictObject({
  name: Text(200).trim().min(1),
  task: Task,
  overlap: z.int().min(1).max(100).default(1),
  guidelines: Text(100_000).default(""), // markdown
  // Every `gold_every`-th item a labeler gets is a gold item (while unanswered gold items remain).
  gold_every: z.int().min(2).max(1000).default(10),
  // Show labelers the items' AI suggestions (an AI judge's verdict). Off by default: seeing a
  // model's answer first anchors people to it, which is what the agreement numbers would then measure.
  show_suggestions: z.boolean().default(false),
});
export type CreateProjectRequest = z.input<typeof CreateProjectRequest>;

export const Project = z.object({
  id: z.string(),
  name: z.string(),
  task: Task,
  overlap: z.int(),
  guidelines: z.string(),
  gold_every: z.int(),
  show_suggestions: z.boolean(),
  created_at: z.string(), // ISO 8601
});
export type Project = z.infer<typeof Project>;

// PATCH /api/projects/:project: the settings an admin may change after creation.
export const UpdateProjectRequest = z.strictObject({ show_suggestions: z.boolean() });
export type UpdateProjectRequest = z.infer<typeof UpdateProjectRequest>;

// A labeler's own progress in a project; admins see the project-wide numbers instead.
export const Progress = z.object({
  answered: z.int(), // answers this labeler gave (skips included)
  remaining: z.int(), // non-gold items this labeler could still be given right now
  total_items: z.int(), // non-gold items in the project
  complete_items: z.int(), // non-gold items that reached the overlap
});
export type Progress = z.infer<typeof Progress>;

export const ProjectSummary = Project.omit({ guidelines: true }).extend({ progress: Progress });
export type ProjectSummary = z.infer<typeof ProjectSummary>;

export const ProjectDetail = Project.extend({ progress: Progress });
export type ProjectDetail = z.infer<typeof ProjectDetail>;

export const Me = z.object({ id: z.string(), name: z.string(), role: Role });
export type Me = z.infer<typeof Me>;

// Gold answers refer to responses by their index in the imported `responses` list, since
// response ids do not exist before import. Same shape rules as AnswerRequest.
const RankingByPosition = z.strictObject({
  ranking: z.array(z.int().min(0)).min(2).max(MAX_RESPONSES),
  ties: z.array(z.tuple([z.int().min(0), z.int().min(0)])).max(MAX_RESPONSES).optional(),
});
const RatingsByPosition = z.strictObject({ ratings: z.array(z.int().min(LIKERT_MIN).max(LIKERT_MAX)).min(2).max(MAX_RESPONSES) });
export const GoldAnswer = z.union([RankingByPosition, RatingsByPosition]);
export type GoldAnswer = z.infer<typeof GoldAnswer>;

// An AI judge's verdict on an item (Argilla's "suggestions"), by response position like a gold
// answer: pairwise {"ranking": [1, 0]} says the second response is better, a tie adds
// "ties": [[0, 1]]. `confidence` in [0, 1] and `judge` and `rationale` as `rlhf judge` writes them.
const SuggestionAbout = {
  confidence: z.number().min(0).max(1).optional(),
  judge: Text(200).optional(),
  rationale: Text(10_000).optional(),
};
export const Suggestion = z.union([RankingByPosition.extend(SuggestionAbout), RatingsByPosition.extend(SuggestionAbout)]);
export type Suggestion = z.infer<typeof Suggestion>;

// One line of `feedback import` JSONL, or one element of the POST .../items array.
export const ImportItem = z.object({
  id: Text(200, 1).optional(), // the caller's id, kept as `external_id` and in exports
  prompt: Prompt,
  responses: z.array(Text(MAX_TEXT)).min(2).max(MAX_RESPONSES),
  gold: GoldAnswer.optional(),
  suggestion: Suggestion.optional(),
  // What wrote the responses (a policy checkpoint, a loop round): kept in exports, counted in stats.
  policy: Text(200, 1).optional(),
});
export type ImportItem = z.infer<typeof ImportItem>;

export const ImportItemsRequest = z.array(ImportItem).min(1).max(50_000);
export type ImportItemsRequest = z.infer<typeof ImportItemsRequest>;

export const ImportItemsResponse = z.object({
  imported: z.int(),
  item_ids: z.array(z.string()), // in request order
});
export type ImportItemsResponse = z.infer<typeof ImportItemsResponse>;

// Other labeling tools whose files the app imports and exports (docs/feedback-interop.md).
export const INTEROP_TOOLS = ["label-studio", "argilla"] as const;

// POST /api/projects/:project/import?from=label-studio|argilla: the tool's export, a JSON array of
// Label Studio tasks or Argilla records (docs/feedback-interop.md); its annotations become answers.
export const ToolImportQuery = z.strictObject({ from: z.enum(INTEROP_TOOLS) });
export const ToolImportRequest = z.array(z.unknown()).min(1).max(50_000);
export const ToolImportResponse = z.object({ imported: z.int(), answers: z.int() });
export type ToolImportResponse = z.infer<typeof ToolImportResponse>;

export const ShownResponse = z.object({ id: z.string(), text: z.string() });
export type ShownResponse = z.infer<typeof ShownResponse>;

// A suggestion as a labeler sees it: by response id (ranking, ties, or ratings per id).
export const ShownSuggestion = z.object({
  ranking: z.array(z.string()).nullable(),
  ties: z.array(z.tuple([z.string(), z.string()])).nullable(),
  ratings: z.record(z.string(), z.int()).nullable(),
  confidence: z.number().nullable(),
  judge: z.string().nullable(),
  rationale: z.string().nullable(),
});
export type ShownSuggestion = z.infer<typeof ShownSuggestion>;

// GET /api/projects/:project/next. `responses` is in this labeler's shuffled order (recorded by
// the server to measure position bias). Asking again before answering returns the same item.
export const NextItem = z.object({
  id: z.string(),
  project_id: z.string(),
  prompt: Prompt,
  responses: z.array(ShownResponse),
  task: Task,
  progress: Progress,
  lease_expires_at: z.string(), // ISO 8601; after this the slot may go to another labeler
  // Only when the project shows suggestions and the item has one; otherwise absent.
  suggestion: ShownSuggestion.optional(),
});
export type NextItem = z.infer<typeof NextItem>;

// Request ids make a submission idempotent: the same (labeler, request_id) replays the first answer.
const RequestId = Text(128, 1);
const ResponseId = Id;
const Rationale = Text(10_000).optional();

// POST /api/items/:item/answers. Exactly one of: `skip: true`; `ranking` (pairwise and ranking
// tasks: every response id, best first, with `ties` as pairs of ids judged equal; for pairwise a
// tie is `ties: [[a, b]]`); `ratings` (rating tasks: every response id -> 1..7).
// `elapsed_ms` is optional and informational; time per answer is measured by the server.
export const AnswerRequest = z
  .strictObject({
    request_id: RequestId,
    skip: z.literal(true).optional(),
    ranking: z.array(ResponseId).min(2).max(MAX_RESPONSES).optional(),
    ties: z.array(z.tuple([ResponseId, ResponseId])).max(MAX_RESPONSES * MAX_RESPONSES).optional(),
    ratings: z.record(ResponseId, z.int().min(LIKERT_MIN).max(LIKERT_MAX)).optional(),
    rationale: Rationale,
  })
  .refine((a) => [a.skip, a.ranking, a.ratings].filter((x) => x !== undefined).length === 1, {
    message: "give exactly one of skip, ranking, ratings",
  })
  .refine((a) => a.ties === undefined || a.ranking !== undefined, { message: "ties need a ranking" });
export type AnswerRequest = z.infer<typeof AnswerRequest>;

export const AnswerResponse = z.object({
  id: z.string(),
  item_id: z.string(),
  request_id: z.string(),
  skip: z.boolean(),
  ranking: z.array(z.string()).nullable(),
  ties: z.array(z.tuple([z.string(), z.string()])).nullable(),
  ratings: z.record(z.string(), z.int()).nullable(),
  rationale: z.string().nullable(),
  shown_order: z.array(z.string()), // response ids in the order this labeler saw them
  answered_at: z.string(),
  replayed: z.boolean(), // true when this request_id had already been answered
});
export type AnswerResponse = z.infer<typeof AnswerResponse>;

// label-studio and argilla: one JSON array of every item with each labeler's answer, in that
// tool's import shape (docs/feedback-interop.md), for pairwise and ranking projects; no aggregate.
export const EXPORT_FORMATS = ["preference", "ranking", ...INTEROP_TOOLS] as const;
export const EXPORT_AGGREGATES = ["all", "majority"] as const;
// Path parameters: /api/projects/:project/... and /api/items/:item/...
export const ProjectParams = z.strictObject({ project: Id });
export const ItemParams = z.strictObject({ item: Id });
export const NoQuery = z.strictObject({});

export const ExportQuery = z.strictObject({
  format: z.enum(EXPORT_FORMATS).optional(), // default: preference for pairwise, ranking otherwise
  aggregate: z.enum(EXPORT_AGGREGATES).default("all"),
});
export type ExportQuery = z.input<typeof ExportQuery>;

// Agreement and quality numbers; null where there is too little data to compute one.
export const LabelerStats = z.object({
  labeler_id: z.string(),
  name: z.string(),
  answers: z.int(),
  skips: z.int(),
  // Fraction of response pairs where this labeler matches the strict majority of the *other*
  // labelers of the same item (leave-one-out), over all pairs that have such a majority.
  majority_agreement: z.number().nullable(),
  majority_pairs: z.int(),
  gold_agreement: z.number().nullable(), // fraction of gold response pairs answered like the gold answer
  gold_pairs: z.int(),
  median_seconds: z.number().nullable(), // time from being served the item to answering it
});
export type LabelerStats = z.infer<typeof LabelerStats>;

export const ProjectStats = z.object({
  project_id: z.string(),
  task: Task,
  overlap: z.int(),
  progress: z.object({
    total_items: z.int(),
    complete_items: z.int(),
    gold_items: z.int(),
    answers: z.int(),
    skips: z.int(),
  }),
  agreement: z.object({
    // pairwise: Fleiss' kappa over A / B / tie, on items with 2+ non-skip answers.
    // ranking: Krippendorff's alpha (ordinal) over the rank each labeler gave each response.
    // rating: Krippendorff's alpha (interval) over the 1..7 scores of each response.
    metric: z.enum(["fleiss_kappa", "krippendorff_alpha_ordinal", "krippendorff_alpha_interval"]),
    value: z.number().nullable(),
    items: z.int(), // items that entered the computation
  }),
  median_seconds: z.number().nullable(),
  // Position bias: over every answered response pair that is not a tie, how often the response
  // shown earlier won. 0.5 means no bias; p_value is a two-sided binomial test against 0.5.
  position_bias: z.object({
    pairs: z.int(),
    first_shown_win_rate: z.number().nullable(),
    p_value: z.number().nullable(),
  }),
  labelers: z.array(LabelerStats),
  // The items' AI suggestions against people: on every response pair of a non-gold item that has a
  // suggestion and a strict majority of its non-skip answers, the suggestion's outcome (first
  // better / second better / tie) against the majority's. Cohen's kappa counts each pair in both
  // orientations, as `rlhf judge` does, so the arbitrary order of an item's responses cannot
  // move it. When the project shows suggestions, people may be anchored to them.
  ai_agreement: z.object({
    suggested_items: z.int(), // non-gold items that have a suggestion
    items: z.int(), // items that entered the computation
    pairs: z.int(), // response pairs (one per pairwise item)
    agreement: z.number().nullable(), // share of pairs where the suggestion matched the majority
    cohen_kappa: z.number().nullable(),
    judges: z.array(z.string()), // the suggestions' judge names, sorted
  }),
  // Non-gold items by the policy that wrote them (items imported without one are not listed).
  policies: z.array(z.object({ policy: z.string(), items: z.int(), complete_items: z.int(), answers: z.int() /* non-skip */ })),
});
export type ProjectStats = z.infer<typeof ProjectStats>;

export const ErrorResponse = z.object({ error: z.string(), request_id: z.string().optional() });
export type ErrorResponse = z.infer<typeof ErrorResponse>;
