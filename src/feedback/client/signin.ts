// Sign-in: the user pastes the API token that `rlhf feedback user add` printed.
import { api, ApiError, session } from "./api.ts";
import { h, statusLine } from "./dom.ts";

export function signInPage(root: HTMLElement, onSignedIn: () => void, notice?: string) {
  const token = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "current-password", required: true, spellcheck: "false",
    "aria-describedby": "token-help",
  });
  const remember = h("input", { id: "remember", type: "checkbox" });
  const status = statusLine();
  if (notice) status.show(notice, "error");
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card narrow", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("label", { for: "token" }, "API token"),
    token,
    h("p", { id: "token-help", class: "hint" }, "Ask an admin for a token; they create one with ", h("code", {}, "rlhf feedback user add NAME --role labeler"), "."),
    h("label", { class: "inline" }, remember, " Keep me signed in on this device"),
    submit,
    status,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = token.value.trim();
    if (!value) return;
    submit.disabled = true;
    status.show("Checking the token…");
    try {
      await api.me(value); // reject a mistyped token here rather than on the next page
      session.signIn(value, remember.checked);
      onSignedIn();
    } catch (err) {
      status.show(err instanceof ApiError && err.status === 401 ? "That token is not valid." : `Could not sign in: ${(err as Error).message}`, "error");
      submit.disabled = false;
    }
  });
  root.replaceChildren(form);
  token.focus();
}
