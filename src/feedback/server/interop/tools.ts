// The other labeling tools whose files `feedback import --from` reads and `feedback export
// --format` (and GET .../export?format=) writes: one entry point per direction.
import type { Task } from "../../shared/schema.ts";
import type { Store } from "../db.ts";
import type { ProjectRow } from "../projects.ts";
import { parseArgilla, renderArgilla } from "./argilla.ts";
import { exportForeign, importForeign, InteropError, type ForeignItem } from "./foreign.ts";
import { parseLabelStudio, renderLabelStudio } from "./label-studio.ts";

export const TOOLS = ["label-studio", "argilla"] as const;
export type Tool = (typeof TOOLS)[number];
export const isTool = (x: string | undefined): x is Tool => (TOOLS as readonly string[]).includes(x ?? "");

/** A tool's file as records: Label Studio's JSON array of tasks; Argilla's JSON array or JSON lines. */
export function parseToolFile(tool: Tool, text: string, file: string, task: Task): ForeignItem[] {
  const body = text.trimStart();
  let json: unknown;
  if (body.startsWith("[") || tool === "label-studio") {
    try { json = JSON.parse(body); } catch (e) { throw new InteropError(`${file}: not JSON: ${(e as Error).message}`); }
    if (tool === "label-studio") return parseLabelStudio(json, task, file);
    if (!Array.isArray(json)) throw new InteropError(`${file}: expected a JSON array of Argilla records`);
    return parseArgilla(json, task, (n) => `${file}: record #${n + 1}`);
  }
  const lines = text.split("\n").map((t, i) => ({ t, line: i + 1 })).filter((l) => l.t.trim());
  const records = lines.map(({ t, line }) => {
    try { return JSON.parse(t) as unknown; } catch (e) { throw new InteropError(`${file}:${line}: not JSON: ${(e as Error).message}`); }
  });
  return parseArgilla(records, task, (n) => `${file}:${lines[n]!.line}`);
}

export async function importToolFile(store: Store, project: ProjectRow, tool: Tool, text: string, file: string) {
  const records = parseToolFile(tool, text, file, project.task as Task);
  if (records.length === 0) throw new InteropError(`${file}: no records`);
  return importForeign(store, project, records, (n) => `${file}: record #${n + 1}`);
}

/** The project's items and answers as one JSON document in the tool's shape; `leftOut` counts answers it cannot hold. */
export async function exportToTool(store: Store, project: ProjectRow, tool: Tool): Promise<{ json: string; records: number; leftOut: number }> {
  const task = project.task as Task;
  const items = await exportForeign(store, project);
  const { tasks, leftOut } = tool === "label-studio" ? renderLabelStudio(items, task) : { tasks: renderArgilla(items, task), leftOut: 0 };
  return { json: JSON.stringify(tasks, null, 2) + "\n", records: tasks.length, leftOut };
}
