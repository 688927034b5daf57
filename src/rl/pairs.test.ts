// Preference data from a policy and a reward: best against worst (ties skipped and counted),
// rankings with ties, records that the preference reader accepts (text and chat prompts), scores
// that are the reward's, and the same records for the same seed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { initEngine } from "../engine/runtime.ts";
import { tempDir } from "../io/test-helpers.ts";
import { initParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { readPreferenceData } from "../data/datasets.ts";
import { ModuleRewardSource } from "./reward-source.ts";
import { preferencePair, preferenceRecords, rankingRecord, sampleScored, type PairsSettings, type PreferenceRecord, type RankingRecord } from "./pairs.ts";
import type { PromptValue } from "./prompts.ts";
import { letters, shareOfE, tinyArch } from "./test-helpers.ts";

const settings: PairsSettings = { k: 4, max_new_tokens: 6, temperature: 1, top_k: 0, top_p: 1, seed: 0, batch_size: 2 };
let params: Params | undefined;

test("best against worst, the first of equals; all-equal scores give nothing", () => {
  const ended = (n: number) => Array.from({ length: n }, () => false);
  assert.deepEqual(preferencePair({ prompt: "ab", completions: ["a", "b", "c", "d"], scores: [1, 3, 0, 3], truncated: ended(4) }), { prompt: "ab", chosen: "b", rejected: "c", score_chosen: 3, score_rejected: 0 });
  assert.equal(preferencePair({ prompt: "ab", completions: ["a", "b"], scores: [2, 2], truncated: ended(2) }), null);
  // A completion cut off at max_new_tokens is marked, so the readers give it no EOS.
  assert.deepEqual(preferencePair({ prompt: "ab", completions: ["a", "b", "c"], scores: [1, 3, 0], truncated: [true, false, true] }), {
    prompt: "ab", chosen: "b", rejected: "c", score_chosen: 3, score_rejected: 0, rejected_truncated: true,
  });
  const chat = [{ role: "user", content: "ab" }];
  assert.deepEqual(preferencePair({ prompt: chat, completions: ["a", "b"], scores: [0, 1], truncated: ended(2) }), {
    prompt: chat, chosen: [{ role: "assistant", content: "b" }], rejected: [{ role: "assistant", content: "a" }], score_chosen: 1, score_rejected: 0,
  });
});

test("rankings list indices best first and pair equal neighbours as ties", () => {
  const ended = (n: number) => Array.from({ length: n }, () => false);
  assert.deepEqual(rankingRecord({ prompt: "ab", completions: ["a", "b", "c", "d"], scores: [1, 3, 0, 1], truncated: ended(4) }), {
    prompt: "ab", responses: ["a", "b", "c", "d"], ranking: [1, 0, 3, 2], ties: [[0, 3]], scores: [1, 3, 0, 1],
  });
  assert.ok(!("ties" in rankingRecord({ prompt: "ab", completions: ["a", "b"], scores: [0, 1], truncated: ended(2) })!));
  assert.deepEqual(rankingRecord({ prompt: "ab", completions: ["a", "b"], scores: [0, 1], truncated: [false, true] })!.truncated, [false, true]);
  assert.equal(rankingRecord({ prompt: "ab", completions: ["a", "b", "c"], scores: [1, 1, 1], truncated: ended(3) }), null);
});

async function sample(prompts: PromptValue[], over: Partial<PairsSettings> = {}, reward = shareOfE, tokenizer: Tokenizer = letters) {
  await initEngine();
  params ??= initParams(tinyArch, 4);
  return sampleScored({ arch: tinyArch, params, tokenizer, prompts, reward, eosIds: [2], settings: { ...settings, ...over } });
}

test("sampled pairs: the reward's own scores, chosen above rejected, readable as preference data, the same for the same seed", async () => {
  const prompts = ["ab", "c", "dd", "abc", "e"];
  const scored = await sample(prompts);
  assert.deepEqual(scored.map((s) => s.prompt), prompts);
  for (const s of scored) {
    assert.equal(s.completions.length, 4);
    // max_new_tokens 6: six letters means generation never ended (one token per letter).
    s.completions.forEach((c, i) => c.length === 6 && assert.ok(s.truncated[i], `"${c}" was cut off but not marked`));
    assert.deepEqual(s.scores, await shareOfE.score(s.completions.map(() => s.prompt as string), s.completions));
  }
  const flags = scored.flatMap((s) => s.truncated);
  assert.ok(flags.includes(true) && flags.includes(false), `cut off: ${flags}`);
  const { records, tied } = preferenceRecords(scored, "preference");
  assert.equal(records.length + tied, 5);
  assert.ok(records.length >= 3, `only ${records.length} of 5 prompts gave a preference`);
  for (const r of records as PreferenceRecord[]) {
    assert.ok(r.score_chosen > r.score_rejected);
    assert.deepEqual(await shareOfE.score([r.prompt as string, r.prompt as string], [r.chosen as string, r.rejected as string]), [r.score_chosen, r.score_rejected]);
  }
  const dir = await tempDir();
  const file = join(dir, "pairs.jsonl");
  writeFileSync(file, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const read = readPreferenceData(file, letters);
  assert.equal(read.length, records.length);
  // prompt + chosen, then EOS: the reader renders what was sampled.
  const first = records[0] as PreferenceRecord;
  assert.deepEqual(read[0]!.responses[read[0]!.pairs[0]!.chosen], letters.encode(`${first.prompt}${first.chosen}`).concat(2));

  const ranked = preferenceRecords(scored, "ranking");
  assert.equal(ranked.tied, tied);
  const rankFile = join(dir, "ranking.jsonl");
  writeFileSync(rankFile, ranked.records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  assert.equal(readPreferenceData(rankFile, letters).length, ranked.records.length);
  for (const r of ranked.records as RankingRecord[]) assert.ok(r.ranking.every((i, k) => k === 0 || r.scores[r.ranking[k - 1]!]! >= r.scores[i]!));

  // Same seed, same samples; another seed, other samples.
  assert.deepEqual(await sample(prompts), scored);
  assert.notDeepEqual(await sample(prompts, { seed: 1 }), scored);
});

test("a reward that scores everything the same gives no pairs and counts every prompt as tied", async () => {
  const flat = new ModuleRewardSource("flat", (_p, cs) => cs.map(() => 0.5));
  const { records, tied } = preferenceRecords(await sample(["ab", "c", "d"], { k: 2 }, flat), "preference");
  assert.deepEqual([records.length, tied], [0, 3]);
});

test("chat prompts keep their messages and give assistant messages the preference reader renders", async () => {
  const chatLetters: Tokenizer = { ...letters, chatTemplate: "{% for m in messages %}{{ m.content }}{% endfor %}" };
  const prompts = [[{ role: "user", content: "ab" }], [{ role: "system", content: "c" }, { role: "user", content: "dd" }]];
  const { records } = preferenceRecords(await sample(prompts, { k: 6 }, shareOfE, chatLetters), "preference");
  assert.ok(records.length > 0);
  for (const r of records as PreferenceRecord[]) {
    assert.ok(prompts.some((p) => p === r.prompt));
    assert.equal((r.chosen as { role: string }[])[0]!.role, "assistant");
  }
  const file = join(await tempDir(), "chat.jsonl");
  writeFileSync(file, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  assert.equal(readPreferenceData(file, chatLetters).length, records.length);
});

test("k below 2 is refused", async () => {
  await assert.rejects(sample(["ab"], { k: 1 }), /k must be an integer of at least 2/);
});
