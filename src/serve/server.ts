// A model and its tokenizer loaded, a scheduler over them and the HTTP app in front: what
// `rlhf serve` runs, and what the tests start in-process.
import type { FastifyInstance } from "fastify";
import { Template } from "@huggingface/jinja";
import { InputError } from "../io/errors.ts";
import { readInputText } from "../io/text-file.ts";
import { disposeModel, loadModel, resolveTokenizer, type LoadedModel } from "../models/load.ts";
import { eosIdsOf } from "../generation/eos.ts";
import { DEFAULT_CHAT_TEMPLATE } from "../tokenizers/chat.ts";
import { buildServeApp } from "./app.ts";
import { Scheduler } from "./scheduler.ts";

export interface ServerOptions {
  /** A llama2.c file, a Hugging Face directory or a LoRA adapter directory (over its base). */
  model: string;
  /** A LoRA adapter merged into `model` (then the base). */
  adapter?: string | undefined;
  /** The base of an adapter given as `model` (default: its adapter_config.json's). */
  base?: string | undefined;
  tokenizer?: string | undefined;
  modelName?: string | undefined;
  apiKey?: string | undefined;
  /** A Jinja file, or "default" for tokenizers/chat.ts's DEFAULT_CHAT_TEMPLATE; else the tokenizer's own. */
  chatTemplate?: string | undefined;
  maxBatch?: number;
  /** Tokens per sequence (prompt + completion); at most the model's context. */
  maxModelLen?: number | undefined;
  log?: { write(line: string): void };
}

export interface ModelServer {
  app: FastifyInstance;
  scheduler: Scheduler;
  model: LoadedModel;
  modelName: string;
  /** Closes the HTTP server, then frees the model. */
  close(): Promise<void>;
}

/** Contexts longer than this are opt-in (--max-model-len): every row of the batch holds a cache this long. */
const DEFAULT_MAX_MODEL_LEN = 2048;

export async function openServer(opts: ServerOptions): Promise<ModelServer> {
  const model = opts.adapter ? await loadModel(opts.adapter, { base: opts.model }) : await loadModel(opts.model, { base: opts.base });
  try {
    const tokenizer = await resolveTokenizer(model, opts.tokenizer);
    const context = model.arch.maxPositions;
    const maxModelLen = opts.maxModelLen ?? Math.min(context, DEFAULT_MAX_MODEL_LEN);
    if (maxModelLen > context) throw new InputError(`--max-model-len ${maxModelLen} exceeds the model's context of ${context} tokens`);
    const chatTemplate = chatTemplateFrom(opts.chatTemplate, tokenizer.chatTemplate);
    const scheduler = new Scheduler(model.arch, model.params, tokenizer, eosIdsOf(model, tokenizer), { maxRows: opts.maxBatch ?? 8, contextLength: maxModelLen });
    const modelName = opts.modelName ?? defaultModelName(opts);
    const app = buildServeApp({ scheduler, tokenizer, modelName, apiKey: opts.apiKey, chatTemplate, ...(opts.log ? { log: opts.log } : {}) });
    return {
      app, scheduler, model, modelName,
      close: async () => {
        await app.close();
        scheduler.dispose();
        disposeModel(model);
      },
    };
  } catch (err) {
    disposeModel(model);
    throw err;
  }
}

function chatTemplateFrom(flag: string | undefined, own: string | null): string | null {
  if (flag === undefined) return own;
  if (flag === "default") return DEFAULT_CHAT_TEMPLATE;
  const text = readInputText(flag, "chat template file");
  try {
    new Template(text);
  } catch (err) {
    throw new InputError(`--chat-template ${flag}: not a Jinja template: ${(err as Error).message}`);
  }
  return text;
}

/** The last part of the path (the adapter's when there is one), as vLLM names a model by its path. */
function defaultModelName(opts: ServerOptions): string {
  const path = (opts.adapter ?? opts.model).replace(/[/\\]+$/, "");
  return path.split(/[/\\]/).pop()!.replace(/\.bin$/, "");
}
