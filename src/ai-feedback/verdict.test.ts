import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../io/test-helpers.ts";
import { drawPrinciples, readConstitution } from "./constitution.ts";
import { judgeItem } from "./judge-data.ts";
import { agreementWithPeople, type ComparisonResult } from "./judge-run.ts";
import { renderJudgeMessages, splitTemplateSpec, type JudgeTemplate } from "./judge-template.ts";
import { concurrencyLimit, RetryableError, withRetries } from "./retry.ts";
import { combineOrders, parseVerdict, textVerdict } from "./verdict.ts";

test("parseVerdict: exactly one kind of [[A]] / [[B]] / [[C]], else null", () => {
  assert.equal(parseVerdict("A is clearer.\n[[A]]"), "A");
  assert.equal(parseVerdict("[[B]] ... so [[B]]"), "B");
  assert.equal(parseVerdict("a tie: [[C]]"), "C");
  assert.equal(parseVerdict("[[A]] if A is better, [[B]] if B is: [[A]]"), null);
  assert.equal(parseVerdict("Assistant A is better."), null);
  assert.equal(parseVerdict("[A]"), null);
  assert.equal(parseVerdict("[[a]]"), null);
});

test("combineOrders: agreement, one tie, disagreement, position bias, log-probabilities", () => {
  const t = (v: "A" | "B" | "C") => textVerdict(v, "");
  assert.deepEqual(combineOrders(t("A"), t("B")), { winner: 0, p_first: 1, confidence: 1 });
  assert.deepEqual(combineOrders(t("B"), t("A")), { winner: 1, p_first: 0, confidence: 1 });
  assert.deepEqual(combineOrders(t("C"), t("A")), { winner: 1, p_first: 0.25, confidence: 0.75 });
  assert.deepEqual(combineOrders(t("A"), t("C")), { winner: 0, p_first: 0.75, confidence: 0.75 });
  assert.deepEqual(combineOrders(t("A"), t("A")), { winner: null, p_first: 0.5, confidence: 0.5 });
  assert.deepEqual(combineOrders(t("C"), t("C")), { winner: null, p_first: 0.5, confidence: 0.5 });
  // A log-probability judge that leans to A in both orders: the orders disagree about the response.
  const lp = (p_a: number) => ({ verdict: (p_a > 0.5 ? "A" : "B") as "A" | "B", rationale: null, p_a });
  const biased = combineOrders(lp(0.9), lp(0.7));
  assert.equal(biased.winner, null);
  assert.ok(Math.abs(biased.p_first - 0.6) < 1e-12 && Math.abs(biased.confidence - 0.6) < 1e-12);
  const agreed = combineOrders(lp(0.8), lp(0.4));
  assert.equal(agreed.winner, 0);
  assert.ok(Math.abs(agreed.confidence - 0.7) < 1e-12);
});

test("agreementWithPeople: ties count as disagreement; kappa over both orientations", () => {
  const item = { where: "f:1", prompt: "q", responses: ["a", "b"], human: [{ chosen: 0, rejected: 1 }] };
  const result = (winner: 0 | 1 | null, item: number, p_first: number): ComparisonResult => ({ comparison: { item, i: 0, j: 1, principle: null }, ab: textVerdict("A", ""), ba: textVerdict("B", ""), combined: { winner, p_first, confidence: 1 } });
  const items = [item, item, item, item];
  const results = [result(0, 0, 0.9), result(0, 1, 0.4), result(1, 2, 0.2), result(null, 3, 0.6)];
  const a = agreementWithPeople(items, results)!;
  assert.equal(a.pairs, 4);
  assert.equal(a.agreement, 0.5);
  assert.equal(a.agreement_without_ties, 2 / 3);
  assert.equal(a.judge_ties, 1);
  assert.equal(a.agreement_by_probability, 0.5, "p_first 0.9 and 0.6 lean to people's first; 0.4 and 0.2 do not");
  // po = 0.5, human marginals (½, ½, 0), judge (3/8, 3/8, 1/4): pe = 3/8, κ = (0.5 − 0.375) / 0.625.
  assert.ok(Math.abs(a.cohen_kappa! - 0.2) < 1e-12);
  assert.equal(agreementWithPeople([{ ...item, human: [] }], [result(0, 0, 1)]), null);
});

test("templates: FILE:NAME split, one-pass substitution, principle slot or appended", () => {
  assert.deepEqual(splitTemplateSpec("../d/judge_prompts.jsonl:pair-v2"), { file: "../d/judge_prompts.jsonl", name: "pair-v2" });
  assert.deepEqual(splitTemplateSpec("C:\\x\\t.jsonl"), { file: "C:\\x\\t.jsonl", name: null });
  const t: JudgeTemplate = { name: "t", system_prompt: "Judge.", prompt_template: "{question}|{answer_a}|{answer_b}", output_format: "[[A]]", source: "t" };
  const m = renderJudgeMessages(t, "q {answer_b}", "a", "b", "Be kind.");
  assert.equal(m.user, "q {answer_b}|a|b");
  assert.equal(m.system, "Judge.\n\nJudge the responses by this principle: Be kind.");
  const slotted = renderJudgeMessages({ ...t, system_prompt: "By: {principle}" }, "q", "a", "b", null);
  assert.equal(slotted.system, "By: Choose the response that is more helpful, honest and harmless.");
});

test("constitution: lines or a JSON list; seeded draws", async () => {
  const dir = await tempDir();
  writeFileSync(join(dir, "c.txt"), "\uFEFF# comment\nBe kind.\n\nBe honest.\n");
  writeFileSync(join(dir, "c.json"), JSON.stringify(["Be kind.", "Be honest."]));
  writeFileSync(join(dir, "bad.json"), JSON.stringify(["ok", 3]));
  assert.deepEqual(readConstitution(join(dir, "c.txt")), ["Be kind.", "Be honest."]);
  assert.deepEqual(readConstitution(join(dir, "c.json")), ["Be kind.", "Be honest."]);
  assert.throws(() => readConstitution(join(dir, "bad.json")), /bad\.json: principle 2 must be a non-empty string/);
  const draws = drawPrinciples(["a", "b", "c"], 300, 1);
  assert.deepEqual(draws, drawPrinciples(["a", "b", "c"], 300, 1));
  for (const p of ["a", "b", "c"]) assert.ok(draws.filter((d) => d === p).length > 70);
});

test("withRetries: retryable errors retried with backoff, others thrown at once; concurrencyLimit caps tasks", async () => {
  let calls = 0;
  const started = Date.now();
  const value = await withRetries(async () => {
    if (++calls < 3) throw new RetryableError("busy");
    return 42;
  }, { retries: 3, baseDelayMs: 20 });
  assert.equal(value, 42);
  assert.equal(calls, 3);
  assert.ok(Date.now() - started >= 55, "20 + 40 ms of backoff");
  await assert.rejects(withRetries(async () => { throw new RetryableError("down"); }, { retries: 1, baseDelayMs: 1 }), /down/);
  let fatal = 0;
  await assert.rejects(withRetries(async () => { fatal++; throw new Error("bug"); }, { retries: 5, baseDelayMs: 1 }), /bug/);
  assert.equal(fatal, 1);
  const limit = concurrencyLimit(2);
  let active = 0, most = 0;
  await Promise.all(Array.from({ length: 6 }, () => limit(async () => {
    most = Math.max(most, ++active);
    await new Promise((r) => setTimeout(r, 10));
    active--;
  })));
  assert.equal(most, 2);
});

test("judge data: pairs (explicit or implicit prompt), items with and without people's ranking, errors naming the field", () => {
  assert.deepEqual(judgeItem({ prompt: "Q", chosen: "a", rejected: "b" }, "f:1").human, [{ chosen: 0, rejected: 1 }]);
  assert.deepEqual(judgeItem({ prompt: "Q", chosen: "a", rejected: "b", tie: true }, "f:1").human, [], "a tie record is no label");
  const implicit = judgeItem({ chosen: "\n\nHuman: Hi\n\nAssistant: Hello there", rejected: "\n\nHuman: Hi\n\nAssistant: Go away" }, "f:2");
  assert.equal(implicit.prompt, "\n\nHuman: Hi\n\nAssistant:");
  assert.deepEqual(implicit.responses, [" Hello there", " Go away"]);
  assert.deepEqual(judgeItem({ prompt: "Q", responses: ["a", "b", "c"] }, "f:3").human, []);
  assert.equal(judgeItem({ id: "item-7", prompt: "Q", responses: ["a", "b"] }, "f:3").id, "item-7");
  assert.deepEqual(judgeItem({ prompt: "Q", responses: ["a", "b", "c"], ranking: [2, 0, 1], ties: [[0, 1]] }, "f:3").human, [{ chosen: 2, rejected: 0 }, { chosen: 2, rejected: 1 }]);
  assert.throws(() => judgeItem({ prompt: "Q", responses: ["a"] }, "f:4"), /f:4: "responses" must be a list of at least 2 responses/);
  assert.throws(() => judgeItem({ prompt: "Q", chosen: "a" }, "f:5"), /f:5: "rejected" is missing/);
  assert.throws(() => judgeItem({ prompt: "Q", responses: ["a", 3] }, "f:6"), /f:6: "responses\[1\]" must be a string or a list of \{role, content\} messages/);
  assert.throws(() => judgeItem({ text: "x" }, "f:7"), /f:7: expected "prompt" \+ "responses"/);
});
