// Guidelines are markdown written by admins; they are still sanitized, since a project may be
// created from an imported file or by a compromised account.
import DOMPurify from "dompurify";
import { marked } from "marked";

export function renderMarkdown(markdown: string): DocumentFragment {
  const html = marked.parse(markdown, { async: false, gfm: true });
  return DOMPurify.sanitize(html, { RETURN_DOM_FRAGMENT: true });
}
