// The loop tests' run: a two-round loop on stories260K with a reward-module labeler (a hidden
// preference, also the gold score), tiny trainers, a label budget in round 1.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { sharedData, tempDir } from "../io/test-helpers.ts";

/** A two-round loop config on stories260K in a fresh directory; `settings` replaces top-level settings (e.g. {selection: "random"}). */
export async function setUp(settings: Record<string, string> = {}): Promise<{ dir: string; config: string }> {
  const dir = await tempDir();
  const prompts = ["Once upon a time, there was a cat. It", "Lily went to the park. She", "Tom had a big red ball. He", "The sun was warm. The"];
  writeFileSync(join(dir, "train.jsonl"), prompts.map((prompt) => JSON.stringify({ prompt })).join("\n") + "\n");
  writeFileSync(join(dir, "eval.jsonl"), prompts.slice(0, 3).map((prompt) => JSON.stringify({ prompt: prompt.replace("The", "A") })).join("\n") + "\n");
  // The hidden preference: more e's than a's, longer a little better; rarely a tie.
  writeFileSync(join(dir, "prefer.mjs"), "export function reward(_p, cs) { return cs.map((c) => (c.match(/e/g)?.length ?? 0) - (c.match(/a/g)?.length ?? 0) + c.length / 1000); }\n");
  const config = join(dir, "loop.yaml");
  writeFileSync(
    config,
    Object.entries({
      policy: sharedData("llama2c/stories260K.bin"),
      prompts: "train.jsonl",
      eval_prompts: "eval.jsonl",
      rounds: "2",
      sampling: "{k: 4, max_new_tokens: 10, batch_size: 4}",
      labeler: "{type: reward, reward: prefer.mjs}",
      label_budget: "6",
      selection: "uncertainty",
      gold: "prefer.mjs",
      reward_model: "{held_out: 0.34, args: {max_steps: 4, per_device_train_batch_size: 4, max_length: 48, save_steps: 2, logging_steps: 2}}",
      dpo: "{max_steps: 6, per_device_train_batch_size: 2, max_length: 48, eval_split_ratio: 0.2, save_steps: 2, logging_steps: 2, learning_rate: 1e-3}",
      eval: "{num_samples: 1, max_new_tokens: 10, batch_size: 3}",
      ...settings,
    })
      .map(([key, value]) => `${key}: ${value}`)
      .join("\n") + "\n",
  );
  return { dir, config };
}
