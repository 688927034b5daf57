// KTO's unpaired data from `rlhf pairs --format ranking`: every scored completion becomes one
// {prompt, completion, label} record, desirable when the reward model scored it above 0. Unlike
// best-vs-worst pairs this keeps all K completions and says "good" or "bad" in absolute terms.
//
//   node examples/stories/label-by-sign.mjs RANKING.jsonl > LABELLED.jsonl
import { readFileSync } from "node:fs";

const [file] = process.argv.slice(2);
if (!file) throw new Error("usage: node examples/stories/label-by-sign.mjs RANKING.jsonl");
for (const line of readFileSync(file, "utf8").split("\n")) {
  if (line.trim() === "") continue;
  const { prompt, responses, scores, truncated } = JSON.parse(line);
  // A completion cut off at max_new_tokens stays marked, so rlhf kto gives it no EOS.
  responses.forEach((completion, i) => console.log(JSON.stringify({ prompt, completion, label: scores[i] > 0, ...(truncated?.[i] ? { completion_truncated: true } : {}) })));
}
