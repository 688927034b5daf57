// Entry point: a hash router over four pages. Each page gets an AbortSignal that fires when the
// user navigates away, so its document-level listeners (keyboard shortcuts) go with it.
import type { Me } from "../shared/schema.ts";
import { adminHomePage, adminProjectPage } from "./admin.ts";
import { api, ApiError, session } from "./api.ts";
import { h } from "./dom.ts";
import { labelPage } from "./label.ts";
import { projectListPage } from "./projects.ts";
import { href, parseRoute, type PageContext } from "./routes.ts";
import { signInPage } from "./signin.ts";
import "./style.css";

const root = document.getElementById("app")!;
let me: Me | null = null;
let current: AbortController | null = null;

function header(user: Me): HTMLElement {
  const signOut = h("button", { type: "button", class: "link" }, "Sign out");
  signOut.addEventListener("click", () => {
    session.signOut();
    me = null;
    location.hash = href.home;
    void route();
  });
  return h("header", { class: "top" },
    h("a", { href: href.home, class: "brand" }, "RLHF feedback"),
    h("nav", { "aria-label": "Main" },
      h("a", { href: user.role === "admin" ? href.admin : href.home }, "Projects"),
    ),
    h("span", { class: "who" }, `${user.name} (${user.role})`),
    signOut,
  );
}

async function route(): Promise<void> {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const main = h("main", { id: "main" });
  const { page, id } = parseRoute(location.hash);
  try {
    if (!session.token) return signInPage(root, () => void route());
    me ??= await api.me();
    root.replaceChildren(header(me), main);
    const ctx: PageContext = { me, signal: controller.signal };
    if (page === "label" && id) return await labelPage(main, ctx, id);
    if (page === "admin" && me.role === "admin") return await (id ? adminProjectPage(main, ctx, id) : adminHomePage(main, ctx));
    if (page === "" && me.role === "admin") {
      location.replace(href.admin); // fires hashchange, which routes again
      return;
    }
    return await projectListPage(main, ctx);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session.signOut();
      me = null;
      return signInPage(root, () => void route(), "Your token is no longer accepted. Sign in again.");
    }
    main.replaceChildren(h("p", { class: "status", "data-kind": "error", role: "alert" }, `Something went wrong: ${(e as Error).message}`));
    if (!main.isConnected) root.replaceChildren(main);
  }
}

window.addEventListener("hashchange", () => void route());
void route();
