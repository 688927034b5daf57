// One entry point for every tokenizer layout the project meets; the file's shape decides the loader.
import { stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { loadGpt2Tokenizer, loadHfTokenizer } from "./hf.ts";
import { loadLlama2cTokenizer } from "./llama2c.ts";
import { InputError } from "../io/errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * Accepts a llama2.c tokenizer file (tokenizer.bin, tok512.bin: any non-.json file), a
 * tokenizer.json file (its directory's tokenizer_config.json is used when present), or a directory
 * holding tokenizer.json (+ tokenizer_config.json) or GPT-2's vocab.json + merges.txt.
 */
export async function loadTokenizer(path: string): Promise<Tokenizer> {
  const kind = await kindOf(path);
  if (kind === "missing") throw new InputError(`tokenizer not found: ${path}`);
  if (kind === "file") {
    if (!path.endsWith(".json")) return loadLlama2cTokenizer(path);
    const config = join(dirname(path), "tokenizer_config.json");
    return loadHfTokenizer(path, (await kindOf(config)) === "file" ? config : null);
  }
  const inDir = (name: string) => join(path, name);
  if ((await kindOf(inDir("tokenizer.json"))) === "file") {
    const config = (await kindOf(inDir("tokenizer_config.json"))) === "file" ? inDir("tokenizer_config.json") : null;
    return loadHfTokenizer(inDir("tokenizer.json"), config);
  }
  if ((await kindOf(inDir("vocab.json"))) === "file" && (await kindOf(inDir("merges.txt"))) === "file") {
    return loadGpt2Tokenizer(inDir("vocab.json"), inDir("merges.txt"));
  }
  throw new InputError(`no tokenizer in directory ${path}: expected tokenizer.json, or vocab.json and merges.txt (${basename(path)} has neither)`);
}

async function kindOf(path: string): Promise<"file" | "directory" | "missing"> {
  try {
    return (await stat(path)).isDirectory() ? "directory" : "file";
  } catch {
    return "missing";
  }
}
