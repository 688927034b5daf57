// HTTP calls to the feedback server, typed with the shared schema. The API token is the session:
// kept in sessionStorage (or localStorage when the user asks to be remembered) and sent as a
// bearer header on every call.
import type {
  INTEROP_TOOLS, ToolImportResponse,
  AnswerRequest, AnswerResponse, CreateProjectRequest, ExportQuery, ImportItemsRequest, ImportItemsResponse,
  Me, NextItem, Project, ProjectDetail, ProjectStats, ProjectSummary, UpdateProjectRequest,
} from "../shared/schema.ts";

const TOKEN_KEY = "rlhf-feedback-token";

export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
  },
  signIn(token: string, remember: boolean) {
    this.signOut();
    (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

async function request(method: string, path: string, body?: unknown, token = session.token): Promise<Response> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.ok) return res;
  let message = `${res.status} ${res.statusText}`;
  try {
    const json = (await res.json()) as { error?: unknown };
    if (typeof json.error === "string") message = json.error;
  } catch {
    // Not JSON (a proxy's error page, say): the status line is the best message there is.
  }
  throw new ApiError(res.status, message);
}

async function json<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  return (await (await request(method, path, body, token)).json()) as T;
}

const enc = encodeURIComponent;

export const api = {
  me: (token?: string) => json<Me>("GET", "/api/me", undefined, token),
  projects: () => json<ProjectSummary[]>("GET", "/api/projects"),
  project: (id: string) => json<ProjectDetail>("GET", `/api/projects/${enc(id)}`),
  createProject: (req: CreateProjectRequest) => json<Project>("POST", "/api/projects", req),
  updateProject: (id: string, req: UpdateProjectRequest) => json<Project>("PATCH", `/api/projects/${enc(id)}`, req),
  importItems: (id: string, items: ImportItemsRequest) => json<ImportItemsResponse>("POST", `/api/projects/${enc(id)}/items`, items),
  importTool: (id: string, from: (typeof INTEROP_TOOLS)[number], records: unknown[]) =>
    json<ToolImportResponse>("POST", `/api/projects/${enc(id)}/import?from=${enc(from)}`, records),
  stats: (id: string) => json<ProjectStats>("GET", `/api/projects/${enc(id)}/stats`),
  async next(id: string): Promise<NextItem | null> {
    const res = await request("GET", `/api/projects/${enc(id)}/next`);
    return res.status === 204 ? null : ((await res.json()) as NextItem);
  },
  async exportLines(id: string, q: ExportQuery): Promise<string> {
    const params = new URLSearchParams();
    if (q.format) params.set("format", q.format);
    if (q.aggregate) params.set("aggregate", q.aggregate);
    return (await request("GET", `/api/projects/${enc(id)}/export?${params}`)).text();
  },
  answer: (itemId: string, req: AnswerRequest) => json<AnswerResponse>("POST", `/api/items/${enc(itemId)}/answers`, req),
};

// fetch rejects with a TypeError when the request never got an HTTP answer (offline, reset);
// 5xx and 429 may also pass. Only these are worth repeating with the same request_id.
export const isTransient = (e: unknown) =>
  e instanceof TypeError || (e instanceof ApiError && (e.status >= 500 || e.status === 429));

// Retries are safe because the server treats a repeated (labeler, request_id) as a replay.
export async function submitWithRetry(
  itemId: string, req: AnswerRequest, onRetry: (attempt: number, error: unknown) => void, attempts = 5,
): Promise<AnswerResponse> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await api.answer(itemId, req);
    } catch (e) {
      if (!isTransient(e) || attempt >= attempts) throw e;
      onRetry(attempt, e);
      await new Promise((done) => setTimeout(done, 400 * 2 ** (attempt - 1)));
    }
  }
}

// crypto.randomUUID exists only in secure contexts (https, localhost); a labeling server on a
// LAN address over plain http is not one, but getRandomValues works everywhere.
export function newRequestId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
