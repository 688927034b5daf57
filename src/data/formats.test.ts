// Format detection for every TRL format, and error messages that name the record and the field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeFormat, recordFormat } from "./formats.ts";

const user = { role: "user", content: "Hi" };
const assistant = { role: "assistant", content: "Hello!" };

test("each of TRL's formats, standard and conversational, explicit and implicit prompt", () => {
  const cases: [unknown, string][] = [
    [{ text: "Once upon a time" }, "language modeling (standard)"],
    [{ messages: [user, assistant] }, "language modeling (conversational)"],
    [{ prompt: "Say hi" }, "prompt-only (standard)"],
    [{ prompt: [user] }, "prompt-only (conversational)"],
    [{ prompt: "Say hi", completion: " hi" }, "prompt-completion (standard)"],
    [{ prompt: [user], completion: [assistant] }, "prompt-completion (conversational)"],
    [{ prompt: "Q", chosen: "a", rejected: "b" }, "preference (standard, explicit prompt)"],
    [{ chosen: "Q a", rejected: "Q b", margin: 0.5 }, "preference (standard, implicit prompt)"],
    [{ prompt: [user], chosen: [assistant], rejected: [{ role: "assistant", content: "Go away." }] }, "preference (conversational, explicit prompt)"],
    [{ chosen: [user, assistant], rejected: [user, { role: "assistant", content: "No." }] }, "preference (conversational, implicit prompt)"],
    [{ prompt: "Q", completion: "a", label: false }, "unpaired preference (standard)"],
    [{ prompt: "Q", responses: ["a", "b", "c"], ranking: [2, 0, 1], ties: [[0, 1]] }, "ranking (standard, explicit prompt)"],
    [{ responses: [[user, assistant], [user, user]], ranking: [1, 0] }, "ranking (conversational, implicit prompt)"],
    [{ instruction: "Add", instances: [{ input: "1 2", output: "3" }], id: "seed_task_9" }, "self-instruct (instruction + instances)"],
  ];
  for (const [record, name] of cases) assert.equal(describeFormat(recordFormat(record, "f.jsonl:1")), name, JSON.stringify(record));
});

test("errors name file:line and the field, and say what was expected", () => {
  const error = (record: unknown) => {
    try {
      recordFormat(record, "data.jsonl:7");
    } catch (err) {
      return (err as Error).message;
    }
    return "no error";
  };
  const cases: [unknown, RegExp][] = [
    [{ prompt: "Q", chosen: 3, rejected: "b" }, /^data\.jsonl:7: "chosen" must be a string or a list of \{role, content\} messages, got a number \(3\)$/],
    [{ chosen: "a" }, /^data\.jsonl:7: "chosen" is present but "rejected" is missing$/],
    [{ messages: [user, { content: "x" }] }, /^data\.jsonl:7: "messages\[1\]" has no "role" \(a message is \{"role": string, "content": string\}\)$/],
    [{ messages: [user, { role: "assistant", content: null }] }, /^data\.jsonl:7: "messages\[1\]\.content" must be a string, got null$/],
    [{ messages: [] }, /"messages" is an empty list of messages/],
    [{ messages: "Hi" }, /"messages" must be a list of \{role, content\} messages, got a string \("Hi"\)/],
    [{ prompt: "Q", chosen: [assistant], rejected: [assistant] }, /"chosen" is a list of messages but "prompt" is a string; a record's fields must all be text or all be messages/],
    [{ prompt: "Q", responses: ["a", "b", "c"], ranking: [0, 2, 0] }, /^data\.jsonl:7: "ranking\[2\]" repeats index 0 \(already at ranking\[0\]\); a ranking names each response once$/],
    [{ prompt: "Q", responses: ["a", "b"], ranking: [0, 2] }, /"ranking\[1\]" must be a response index 0\.\.1, got a number \(2\)/],
    [{ prompt: "Q", responses: ["a", "b", "c"], ranking: [0, 1] }, /"ranking" must order all 3 responses, got 2 indices/],
    [{ prompt: "Q", responses: ["a", "b"], ranking: [0, 1], ties: [[0, 5]] }, /"ties\[0\]" must be a pair \[i, j\] of response indices 0\.\.1, got \[0,5\]/],
    [{ prompt: "Q", responses: ["a"], ranking: [0] }, /"responses" must be a list of at least 2 responses, got a list/],
    [{ prompt: "Q", chosen: "a", rejected: "b", margin: "1" }, /"margin" must be a finite number, got a string/],
    [{ instruction: "Add", instances: [{ input: "1 2" }] }, /"instances\[0\]\.output" must be a string, got nothing \(the field is missing\)/],
    [{ completion: "x" }, /"completion" is present but "prompt" is missing/],
    [{ prompt: "Q", completion: "a", label: "yes" }, /"label" must be true or false/],
    [{ text: 5 }, /"text" must be a string, got a number \(5\)/],
    [{ question: "Q", answer: "A" }, /^data\.jsonl:7: no known dataset format \(fields: "question", "answer"\); expected "text", "messages"/],
    [[1, 2], /^data\.jsonl:7: expected a JSON object \(one record\), got a list$/],
  ];
  for (const [record, pattern] of cases) assert.match(error(record), pattern, JSON.stringify(record));
});
