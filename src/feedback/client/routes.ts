// The client's routes: the hash each page lives at, written in one place for the router (main.ts)
// and the pages that link to each other, and what the router hands every page.
import type { Me } from "../shared/schema.ts";

/** What a page is given; `signal` fires when the user navigates away, taking its document-level listeners with it. */
export interface PageContext { me: Me; signal: AbortSignal }

export const href = {
  home: "#/",
  admin: "#/admin",
  adminProject: (projectId: string) => `#/admin/${encodeURIComponent(projectId)}`,
  label: (projectId: string) => `#/label/${encodeURIComponent(projectId)}`,
};

/** The page and id a hash names: "#/label/p%201" → { page: "label", id: "p 1" }; "" or "#/" → page "". */
export function parseRoute(hash: string): { page: string; id: string | undefined } {
  const [page = "", id] = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return { page, id };
}
