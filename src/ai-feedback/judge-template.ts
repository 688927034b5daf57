// Judge templates in FastChat's judge_prompts.jsonl format (MT-bench's LLM-as-a-judge): one JSON
// object per line with `name`, `system_prompt`, `prompt_template` holding {question}, {answer_a} and
// {answer_b}, and `output_format` "[[A]]" (verdicts [[A]] / [[B]] / [[C]]). `--template FILE:NAME`
// picks a line by name; `--template FILE` takes the first pairwise one. The project's own template
// (judge_prompts.jsonl beside this file) has a {principle} slot for a constitution's principle;
// a template without one (FastChat's pair-v2) gets the principle appended to its system prompt.
import { fileURLToPath } from "node:url";
import { InputError } from "../io/errors.ts";
import { numberedLines, readInputText } from "../io/text-file.ts";
import { verdictMarkers } from "./verdict.ts";

export class TemplateError extends InputError {}

export interface JudgeTemplate {
  name: string;
  system_prompt: string;
  prompt_template: string;
  output_format: string;
  /** Where it came from (FILE:NAME), for messages and the output's `judge` field. */
  source: string;
}

export const DEFAULT_TEMPLATE_FILE = fileURLToPath(new URL("./judge_prompts.jsonl", import.meta.url));

/** Used for {principle} when no constitution is given. */
export const DEFAULT_PRINCIPLE = "Choose the response that is more helpful, honest and harmless.";

/** "FILE:NAME" or "FILE"; a Windows drive letter ("C:\x") is not a name. */
export function splitTemplateSpec(spec: string): { file: string; name: string | null } {
  const m = /^(.*\.jsonl?(?:\.gz)?):([^:\\/]+)$/.exec(spec);
  return m ? { file: m[1]!, name: m[2]! } : { file: spec, name: null };
}

export function readJudgeTemplate(spec: string = DEFAULT_TEMPLATE_FILE): JudgeTemplate {
  const { file, name } = splitTemplateSpec(spec);
  const lines = numberedLines(readInputText(file, "template file"));
  const entries = lines.map(({ line, text }) => {
    try {
      const value = JSON.parse(text) as unknown;
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not a JSON object");
      return { where: `${file}:${line}`, value: value as Record<string, unknown> };
    } catch (err) {
      throw new TemplateError(`${file}:${line}: not a JSON object (${(err as Error).message})`);
    }
  });
  const picked = name === null
    ? entries.find((e) => e.value.type === undefined || e.value.type === "pairwise")
    : entries.find((e) => e.value.name === name);
  if (!picked) {
    const names = entries.map((e) => String(e.value.name)).join(", ");
    throw new TemplateError(name === null ? `${file}: no pairwise template (type "pairwise")` : `${file}: no template named "${name}" (names: ${names})`);
  }
  return checkTemplate(picked.value, picked.where, file);
}

function checkTemplate(t: Record<string, unknown>, where: string, file: string): JudgeTemplate {
  for (const field of ["system_prompt", "prompt_template", "output_format"]) {
    if (typeof t[field] !== "string") throw new TemplateError(`${where}: "${field}" must be a string`);
  }
  const template = t as unknown as JudgeTemplate;
  if (t.type !== undefined && t.type !== "pairwise") throw new TemplateError(`${where}: template "${String(t.name)}" is of type "${String(t.type)}"; rlhf judge compares pairs (type "pairwise")`);
  for (const slot of ["{question}", "{answer_a}", "{answer_b}"]) {
    if (!template.prompt_template.includes(slot)) throw new TemplateError(`${where}: "prompt_template" has no ${slot} (a pairwise template needs {question}, {answer_a} and {answer_b})`);
  }
  if (!verdictMarkers(template.output_format)) throw new TemplateError(`${where}: "output_format" is ${JSON.stringify(template.output_format)}; expected "[[A]]" (verdicts [[A]], [[B]], [[C]])`);
  const name = typeof t.name === "string" ? t.name : "unnamed";
  return { name, system_prompt: template.system_prompt, prompt_template: template.prompt_template, output_format: template.output_format, source: `${file}:${name}` };
}

export interface JudgeMessages {
  system: string;
  user: string;
}

/** One pass over the text: an answer that itself contains "{answer_b}" is not substituted again. */
function fill(text: string, values: Record<string, string>): string {
  return text.replace(/\{(question|answer_a|answer_b|principle)\}/g, (whole, key: string) => values[key] ?? whole);
}

/** The system and user messages of one comparison in one order. */
export function renderJudgeMessages(t: JudgeTemplate, question: string, answerA: string, answerB: string, principle: string | null): JudgeMessages {
  const values = { question, answer_a: answerA, answer_b: answerB, principle: principle ?? DEFAULT_PRINCIPLE };
  const hasSlot = t.system_prompt.includes("{principle}") || t.prompt_template.includes("{principle}");
  const system = fill(t.system_prompt, values) + (principle !== null && !hasSlot ? `\n\nJudge the responses by this principle: ${principle}` : "");
  return { system, user: fill(t.prompt_template, values) };
}

/** What comes before "A" in the output format ("[[" for "[[A]]"): a log-probability judge's answer prefix. */
export const answerPrefix = (t: JudgeTemplate) => t.output_format.slice(0, t.output_format.indexOf("A"));
