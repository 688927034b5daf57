import assert from "node:assert/strict";
import { test } from "node:test";
import { aiAgreement, type SuggestedItem } from "./ai-agreement.ts";

// Scores over responses a, b (higher is better) for each outcome of the pair (a, b).
const FIRST = new Map([["a", 0], ["b", -1]]), SECOND = new Map([["a", -1], ["b", 0]]), TIE = new Map([["a", 0], ["b", 0]]);
const outcomes = { first: FIRST, second: SECOND, tie: TIE };
type O = keyof typeof outcomes;
const item = (ai: O, ...people: O[]): SuggestedItem => ({ responseIds: ["a", "b"], suggestion: outcomes[ai], answers: people.map((p) => outcomes[p]) });

test("agreement and Cohen's kappa of suggestions against the people's strict majority", () => {
  // (people's majority, suggestion): (1,1) (1,1) (2,2) (1,2) (tie,tie) (2,tie) (1,1), plus items without a majority.
  const items = [
    item("first", "first"), item("first", "first", "first", "second"), item("second", "second", "second"),
    item("second", "first", "first", "tie"), item("tie", "tie"), item("tie", "second"), item("first", "first"),
    item("first", "first", "second"), // 1 vs 1: no strict majority, left out
    item("second"), // no answers yet, left out
  ];
  const r = aiAgreement(items);
  assert.equal(r.items, 7);
  assert.equal(r.pairs, 7);
  assert.equal(r.agreement, 5 / 7);
  // Reference: the symmetric 3x3 confusion (each pair in both orientations) through numpy gives
  // p_o = 5/7, p_e = 17/49, kappa = 0.5625.
  assert.ok(Math.abs(r.cohen_kappa! - 0.5625) < 1e-12, String(r.cohen_kappa));
});

test("kappa does not depend on the order in which an item's responses were imported", () => {
  const items = [item("first", "first"), item("second", "second", "second"), item("second", "first", "first", "tie"), item("tie", "tie")];
  const swapped = items.map((it, i) => (i % 2 ? { ...it, responseIds: ["b", "a"] } : it));
  assert.deepEqual(aiAgreement(swapped), aiAgreement(items));
});

test("a K-way item counts each response pair with a majority; nothing to compare gives nulls", () => {
  const ids = ["x", "y", "z"];
  const best = (order: string[]) => new Map(order.map((id, i) => [id, -i]));
  const r = aiAgreement([{ responseIds: ids, suggestion: best(["x", "y", "z"]), answers: [best(["x", "z", "y"])] }]);
  assert.deepEqual({ items: r.items, pairs: r.pairs, agreement: r.agreement }, { items: 1, pairs: 3, agreement: 2 / 3 });
  assert.deepEqual(aiAgreement([]), { items: 0, pairs: 0, agreement: null, cohen_kappa: null });
});
