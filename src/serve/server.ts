// A model and its tokenizer loaded, a scheduler over them and the HTTP app in front: what
// `rlhf serve` runs, and what the tests start in-process.
import type { FastifyInstance } from "fastify";
import { Template } from "@huggingface/jinja";
import { InputError } from "../io/errors.ts";
import { readInputText } from "../io/text-file.ts";
import { disposeModel, loadModel, resolveTokenizer, type LoadedModel } from "../models/load.ts";
import { eosIdsOf } from "../generation/eos.ts";
import type { DecodeRows } from "../generation/decode-rows.ts";
import { LlamaCppRows } from "../generation/llama-cpp-rows.ts";
import type { RolloutEngineName } from "../generation/rollout-engine.ts";
import { RowBatch } from "../generation/row-batch.ts";
import { kernelThreadCount } from "../engine/worker-shim.ts";
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
  /** Where decoding runs: the built-in jax-js engine (default) or llama.cpp. */
  rolloutEngine?: RolloutEngineName;
  /** llama.cpp's CPU threads (default: as many as the engine's kernels, RLHF_THREADS): on a loaded machine, 1 avoids threads stalling on each other. */
  threads?: number | undefined;
  log?: { write(line: string): void };
}

export interface ModelServer {
  app: FastifyInstance;
  scheduler: Scheduler;
  /** The model as loaded; with llama.cpp its params are gone (llama.cpp holds the weights). */
  model: LoadedModel;
  modelName: string;
  /** Closes the HTTP server, then frees the model. */
  close(): Promise<void>;
}

/** Contexts longer than this are opt-in (--max-model-len): every row of the batch holds a cache this long. */
const DEFAULT_MAX_MODEL_LEN = 2048;

export async function openServer(opts: ServerOptions): Promise<ModelServer> {
  const model = opts.adapter ? await loadModel(opts.adapter, { base: opts.model }) : await loadModel(opts.model, { base: opts.base });
  let served = model;
  let rows: DecodeRows | undefined;
  try {
    const tokenizer = await resolveTokenizer(model, opts.tokenizer);
    const context = model.arch.maxPositions;
    const maxModelLen = opts.maxModelLen ?? Math.min(context, DEFAULT_MAX_MODEL_LEN);
    if (maxModelLen > context) throw new InputError(`--max-model-len ${maxModelLen} exceeds the model's context of ${context} tokens`);
    const chatTemplate = chatTemplateFrom(opts.chatTemplate, tokenizer.chatTemplate);
    const maxRows = opts.maxBatch ?? 8;
    const onLlamaCpp = opts.rolloutEngine === "llama.cpp";
    rows = onLlamaCpp
      ? await LlamaCppRows.fromParams(model.config, model.params, tokenizer, { maxRows, contextLength: maxModelLen, threads: opts.threads ?? kernelThreadCount() })
      : new RowBatch(model.arch, model.params, maxModelLen);
    if (onLlamaCpp) {
      // llama.cpp has its own copy of the weights: the engine's would only hold memory.
      disposeModel(model);
      served = { ...model, params: {} };
    }
    const scheduler = new Scheduler(rows, model.arch.vocabSize, tokenizer, eosIdsOf(model, tokenizer), { maxRows, contextLength: maxModelLen });
    const modelName = opts.modelName ?? defaultModelName(opts);
    const app = buildServeApp({ scheduler, tokenizer, modelName, apiKey: opts.apiKey, chatTemplate, ...(opts.log ? { log: opts.log } : {}) });
    return {
      app, scheduler, model: served, modelName,
      close: async () => {
        await app.close();
        await scheduler.dispose();
        disposeModel(served);
      },
    };
  } catch (err) {
    await rows?.dispose();
    disposeModel(served);
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
