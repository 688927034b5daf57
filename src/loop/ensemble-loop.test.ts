// `rlhf loop` with a reward-model ensemble: each round's reward model is `rm train --ensemble 2`,
// round 1's label budget goes to the comparisons whose margins round 0's members disagree on most
// (selection: disagreement), and the round table's rm_accuracy is the members' mean's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runRlhf, runRlhfOk } from "../cli/test-helpers.ts";
import { readEnsemble } from "../train/reward-ensemble.ts";
import type { Comparison, LabeledComparison } from "./comparisons.ts";
import { rewardMargins, roundPaths } from "./round.ts";
import { readJsonLines } from "./run-dir.ts";
import { memberDisagreement } from "./selection.ts";
import { setUp } from "./test-helpers.ts";

const ENSEMBLE_RM = "{held_out: 0.34, ensemble: 2, args: {max_steps: 4, per_device_train_batch_size: 4, max_length: 48, save_steps: 2, logging_steps: 2}}";

test("rlhf loop with reward_model.ensemble 2 and selection: disagreement", { timeout: 300_000 }, async () => {
  const { dir, config } = await setUp({ selection: "disagreement", reward_model: ENSEMBLE_RM });
  const out = join(dir, "run");
  const run = runRlhfOk(["loop", "run", config, "--output", out]);
  assert.match(run.stderr, /round 1: 6 of 8 comparisons to the labeler \(largest disagreement of the reward-model ensemble\)/);
  const rounds = readFileSync(join(out, "rounds.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  for (const r of rounds) assert.equal(r.rm_accuracy, readEnsemble(roundPaths(out, r.round!).rm)!.eval!.accuracy);

  const rm0 = roundPaths(out, 0).rm;
  const comparisons = readJsonLines<Comparison>(roundPaths(out, 1).comparisons);
  const margins: number[][] = [];
  for (const m of readEnsemble(rm0)!.members) margins.push(await rewardMargins(join(rm0, m), comparisons));
  const doubt = memberDisagreement(margins);
  const expected = comparisons.map((c, i) => [doubt[i]!, c.id] as const).sort((a, b) => b[0] - a[0]).slice(0, 6).map(([, id]) => id).sort();
  assert.deepEqual(readJsonLines<LabeledComparison>(roundPaths(out, 1).labels).map((l) => l.id).sort(), expected);
});

test("selection: disagreement without reward_model.ensemble is refused, naming the field", async () => {
  const { dir, config } = await setUp({ selection: "disagreement" });
  const r = runRlhf(["loop", "run", config, "--output", join(dir, "run")]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /loop\.yaml: selection disagreement needs a reward-model ensemble: set reward_model\.ensemble to 2 or more/);
});
