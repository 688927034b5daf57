// Guidelines are markdown written by admins; they are still sanitized, since a project may be
// created from an imported file or by a compromised account. What survives is a documented
// allow-list (README, Feedback): text, headings, lists, quotes, code, tables, links and images.
// No forms or inputs (which could post answers or tokens elsewhere), no <style> and no style or
// class attributes (which could hide the answer buttons or lay a full-screen overlay over them),
// no frames, scripts or event handlers. The server's CSP backs this up (form-action 'self', no
// inline styles).
import DOMPurify from "dompurify";
import { marked } from "marked";

export const GUIDELINE_TAGS = [
  "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "b", "em", "i", "del", "s", "sub", "sup",
  "code", "pre", "kbd", "blockquote", "ul", "ol", "li", "dl", "dt", "dd",
  "table", "thead", "tbody", "tr", "th", "td", "a", "img", "details", "summary",
];
export const GUIDELINE_ATTRIBUTES = ["href", "title", "alt", "src", "start", "colspan", "rowspan"];

export function renderMarkdown(markdown: string): DocumentFragment {
  const html = marked.parse(markdown, { async: false, gfm: true });
  return DOMPurify.sanitize(html, { ALLOWED_TAGS: GUIDELINE_TAGS, ALLOWED_ATTR: GUIDELINE_ATTRIBUTES, RETURN_DOM_FRAGMENT: true });
}
