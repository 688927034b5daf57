// The one way this UI creates elements. Children given as strings become text nodes, so model
// outputs, prompts and names can never turn into markup; the only HTML comes from markdown.ts.
export type Child = Node | string | number | null | undefined | false;
type Attr = string | number | boolean | null | undefined | ((event: Event) => void);

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Record<string, Attr> = {}, ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...nodes(children));
  return el;
}

const nodes = (children: Child[]) =>
  children.flatMap((c) => (c === null || c === undefined || c === false ? [] : [typeof c === "number" ? String(c) : c]));

// replaceChildren that accepts the same optional children as h().
export function setChildren(el: Element, ...children: Child[]) {
  el.replaceChildren(...nodes(children));
}

export const kbd = (key: string) => h("kbd", {}, key);

// A live region for results and errors; screen readers announce its changes.
export function statusLine(): HTMLParagraphElement & { show(text: string, kind?: "ok" | "error" | "info"): void } {
  const p = h("p", { class: "status", role: "status", "aria-live": "polite" }) as HTMLParagraphElement & {
    show(text: string, kind?: "ok" | "error" | "info"): void;
  };
  p.show = (text, kind = "info") => {
    p.textContent = text;
    p.dataset.kind = kind;
  };
  return p;
}

export function percent(x: number | null, digits = 0): string {
  return x === null ? "–" : `${(x * 100).toFixed(digits)}%`;
}
