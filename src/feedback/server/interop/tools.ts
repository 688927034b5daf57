// The other labeling tools whose files `feedback import --from` reads and `feedback export
// --format` (and GET .../export?format=) writes: one entry point per direction.
import { INTEROP_TOOLS, type Task } from "../../shared/schema.ts";
import type { Store } from "../db.ts";
import type { ProjectRow } from "../projects.ts";
import { parseArgilla, renderArgilla } from "./argilla.ts";
import { exportForeign, importForeign, InteropError, type ForeignItem } from "./foreign.ts";
import { parseLabelStudio, renderLabelStudio } from "./label-studio.ts";

export const TOOLS = INTEROP_TOOLS;
export type Tool = (typeof TOOLS)[number];
export const isTool = (x: string | undefined): x is Tool => (TOOLS as readonly string[]).includes(x ?? "");

/** A tool's records, parsed JSON: Label Studio's array of tasks or Argilla's array of records. */
export function parseToolRecords(tool: Tool, json: unknown, file: string, task: Task): ForeignItem[] {
  if (tool === "label-studio") return parseLabelStudio(json, task, file);
  if (!Array.isArray(json)) throw new InteropError(`${file}: expected a JSON array of Argilla records`);
  return parseArgilla(json, task, (n) => `${file}: record #${n + 1}`);
}

/** A tool's file: a JSON array as above; Argilla's may also be JSON lines (errors then name FILE:LINE). */
export function parseToolFile(tool: Tool, text: string, file: string, task: Task): ForeignItem[] {
  const body = text.trimStart();
  if (body.startsWith("[") || tool === "label-studio") {
    let json: unknown;
    try { json = JSON.parse(body); } catch (e) { throw new InteropError(`${file}: not JSON: ${(e as Error).message}`); }
    return parseToolRecords(tool, json, file, task);
  }
  const lines = text.split("\n").map((t, i) => ({ t, line: i + 1 })).filter((l) => l.t.trim());
  const records = lines.map(({ t, line }) => {
    try { return JSON.parse(t) as unknown; } catch (e) { throw new InteropError(`${file}:${line}: not JSON: ${(e as Error).message}`); }
  });
  return parseArgilla(records, task, (n) => `${file}:${lines[n]!.line}`);
}

const recordName = (tool: Tool) => (tool === "label-studio" ? "task" : "record");

async function importRecords(store: Store, project: ProjectRow, tool: Tool, records: ForeignItem[], file: string) {
  if (records.length === 0) throw new InteropError(`${file}: no ${recordName(tool)}s`);
  return importForeign(store, project, records, (n) => `${file}: ${recordName(tool)} #${n + 1}`);
}

/** `feedback import --from TOOL FILE`. */
export const importToolFile = (store: Store, project: ProjectRow, tool: Tool, text: string, file: string) =>
  importRecords(store, project, tool, parseToolFile(tool, text, file, project.task as Task), file);

/** POST .../import?from=TOOL: the body is already parsed JSON. */
export const importToolRecords = (store: Store, project: ProjectRow, tool: Tool, json: unknown) =>
  importRecords(store, project, tool, parseToolRecords(tool, json, "body", project.task as Task), "body");

/** The project's items and answers as one JSON document in the tool's shape; `leftOut` counts answers it cannot hold. */
export async function exportToTool(store: Store, project: ProjectRow, tool: Tool): Promise<{ json: string; records: number; leftOut: number }> {
  const task = project.task as Task;
  const items = await exportForeign(store, project);
  const { tasks, leftOut } = tool === "label-studio" ? renderLabelStudio(items, task) : { tasks: renderArgilla(items, task), leftOut: 0 };
  return { json: JSON.stringify(tasks, null, 2) + "\n", records: tasks.length, leftOut };
}
