// describeFailure: every kind of bad input is one line, its message alone; anything else is marked
// as an internal error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DataError } from "../data/formats.ts";
import { CheckpointError, InputError } from "../io/errors.ts";
import { CheckpointPathError } from "../io/detect.ts";
import { ConfigError } from "../models/config-fields.ts";
import { PromptFileError } from "../rl/prompts.ts";
import { RewardSourceError } from "../rl/reward-source.ts";
import { MemoryPlanError } from "../train/memory-plan.ts";
import { UsageError } from "./command.ts";
import { describeFailure } from "./main.ts";

test("input errors print their message alone; other errors say they are internal", () => {
  delete process.env.RLHF_DEBUG;
  for (const Kind of [DataError, CheckpointError, CheckpointPathError, ConfigError, PromptFileError, RewardSourceError, MemoryPlanError]) {
    const err = new Kind("data.jsonl:3: \"chosen\" is missing");
    assert.ok(err instanceof InputError, Kind.name);
    assert.equal(err.name, "InputError", Kind.name);
    assert.equal(describeFailure(err), "data.jsonl:3: \"chosen\" is missing", Kind.name);
  }
  assert.equal(describeFailure(new UsageError("--beta needs a value")), "--beta needs a value");
  assert.equal(describeFailure(new TypeError("x is undefined")), "x is undefined (an internal error; RLHF_DEBUG=1 shows where)");
});
