// A labeler's home: every project with their own progress and a way in.
import { api } from "./api.ts";
import { h } from "./dom.ts";
import { href, type PageContext } from "./routes.ts";

export async function projectListPage(root: HTMLElement, _ctx: PageContext) {
  const projects = await api.projects();
  const rows = projects.map((p) => {
    const { answered, remaining } = p.progress;
    return h("tr", {},
      h("th", { scope: "row" }, p.name),
      h("td", {}, p.task),
      h("td", {}, h("progress", { value: answered, max: Math.max(1, answered + remaining), "aria-label": `${p.name}: ${answered} answered` }),
        ` ${answered} answered, ${remaining} left`),
      h("td", {}, remaining > 0
        ? h("a", { href: href.label(p.id), class: "button primary" }, answered > 0 ? "Continue" : "Start labeling")
        : "Done"),
    );
  });
  root.replaceChildren(
    h("h1", {}, "Projects"),
    projects.length === 0
      ? h("p", {}, "There are no projects yet. An admin creates them.")
      : h("table", {},
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Project"), h("th", { scope: "col" }, "Task"),
            h("th", { scope: "col" }, "Your progress"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Action")))),
          h("tbody", {}, ...rows)),
  );
}
