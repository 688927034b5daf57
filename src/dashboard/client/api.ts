// HTTP calls to the dashboard server, typed with the shared schema.
import type { Cursors, RunSummary, RunUpdate } from "../shared/schema.ts";

async function get<T>(path: string): Promise<T> {
  const res = await fetch(path);
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try { message = ((await res.json()) as { error?: string }).error ?? message; } catch { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  return (await res.json()) as T;
}

export const api = {
  runs: () => get<RunSummary[]>("/api/runs"),
  updates: (run: number, c: Cursors) =>
    get<RunUpdate>(`/api/runs/${run}/updates?${new URLSearchParams(Object.entries(c).map(([k, v]) => [k, String(v)]))}`),
};
