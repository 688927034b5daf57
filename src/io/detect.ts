// Tells the two checkpoint kinds we load apart, so the CLI can take any path.
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError } from "./errors.ts";
import { LLAMA2C_HEADER_BYTES, parseLlama2cHeader } from "./llama2c.ts";

export type CheckpointFormat = "llama2c" | "hf-dir";

/** A path that is not a checkpoint we can load; the CLI prints the message without a stack. */
export class CheckpointPathError extends CheckpointError {}

/** "hf-dir" for a directory with config.json, "llama2c" for a file with a plausible llama2.c header. */
export async function detectCheckpoint(path: string): Promise<CheckpointFormat> {
  const info = await stat(path).catch(() => {
    throw new CheckpointPathError(`checkpoint not found: ${path}`);
  });
  if (info.isDirectory()) {
    if (await stat(join(path, "config.json")).then((s) => s.isFile(), () => false)) return "hf-dir";
    throw new CheckpointPathError(`${path}: a directory without config.json is not a Hugging Face checkpoint`);
  }
  if (/(\.safetensors|config\.json|\.index\.json)$/.test(path)) {
    throw new CheckpointPathError(`${path}: pass the checkpoint directory that contains this file, not the file itself`);
  }
  const fh = await open(path, "r");
  try {
    const header = new Uint8Array(LLAMA2C_HEADER_BYTES);
    const { bytesRead } = await fh.read(header, 0, header.length, 0);
    parseLlama2cHeader(header.subarray(0, bytesRead), path);
    return "llama2c";
  } catch (err) {
    throw new CheckpointPathError(`${path}: unknown checkpoint format: expected a Hugging Face directory (config.json + model.safetensors) or a llama2.c .bin file (${(err as Error).message})`);
  } finally {
    await fh.close();
  }
}
