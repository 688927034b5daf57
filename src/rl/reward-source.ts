// Where rewards come from: a trained reward model directory, a JS/TS module exporting
// `reward(prompts, completions) => number[]` (programmatic rewards, as GRPO users write them), or a
// weighted sum of several; a reward-model ensemble directory (`rlhf rm train --ensemble N`) is one
// source whose score is its members' mean, min or UWO. A reward model keeps its own tokenizer:
// text is re-encoded, so the policy and the RM need not share a vocabulary.
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { compile, release, toHost } from "../engine/arrays.ts";
import { InputError } from "../io/errors.ts";
import { defaultEnsembleOptions, reduceEnsemble, type EnsembleOptions } from "../algorithms/ensemble-reward.ts";
import { isSequenceClassifier } from "../models/config.ts";
import { disposeModel, loadModel, resolveTokenizer, type LoadedModel } from "../models/load.ts";
import type { Params } from "../models/types.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { ensembleMemberDirs, memberOffsets } from "../train/reward-ensemble.ts";
import { lastTokenScore } from "./scoring.ts";
import { packSequences, toDevice, type DeviceSequences } from "./sequences.ts";

/** A reward source that cannot be used as given (missing file, not an RM, bad module); shown without a stack. */
export class RewardSourceError extends InputError {}

export interface RewardSource {
  /** What this source is, for logs. */
  readonly name: string;
  score(prompts: string[], completions: string[]): Promise<number[]>;
  /** Metrics of the scores given since the last call (an ensemble's `objective/rm_ensemble_std`), for the trainer's step; then cleared. */
  takeMetrics?(): Record<string, number>;
  dispose(): void;
}

/** Scores with a sequence-classifier reward model at the last token of prompt + completion. */
export class RewardModelSource implements RewardSource {
  readonly name: string;
  readonly #model: LoadedModel;
  readonly #tokenizer: Tokenizer;
  readonly #score;
  readonly #batchSize: number;

  constructor(model: LoadedModel, tokenizer: Tokenizer, batchSize = 16) {
    if (!isSequenceClassifier(model.config)) {
      throw new RewardSourceError(`${model.path} is not a reward model (config.json architectures should end in ForSequenceClassification)`);
    }
    this.name = `rm:${model.path}`;
    this.#model = model;
    this.#tokenizer = tokenizer;
    this.#batchSize = batchSize;
    this.#score = compile((p: Params, s: DeviceSequences) => lastTokenScore(model.arch, p, s));
  }

  static async load(path: string): Promise<RewardModelSource> {
    const model = await loadModel(path);
    return new RewardModelSource(model, await resolveTokenizer(model));
  }

  async score(prompts: string[], completions: string[]): Promise<number[]> {
    const out: number[] = [];
    const max = this.#model.arch.maxPositions;
    for (let i = 0; i < prompts.length; i += this.#batchSize) {
      const ps = prompts.slice(i, i + this.#batchSize).map((p) => this.#tokenizer.encode(p, { addSpecialTokens: true }));
      // EOS after each completion, as `rlhf rm train` and `rlhf rm score` render a response: the score
      // head was trained to read the end-of-response token (TRL's PPO scores the EOS it sampled too).
      const eos = this.#tokenizer.eosTokenId !== null ? [this.#tokenizer.eosTokenId] : [];
      const cs = completions.slice(i, i + this.#batchSize).map((c) => [...this.#tokenizer.encode(c, { addSpecialTokens: false }), ...eos]);
      // Keep the end of over-long texts: the score is read at the last token.
      const fitted = ps.map((p, k) => fitToContext(p, cs[k]!, max));
      const promptLen = bucket(Math.max(1, ...fitted.map((f) => f[0].length)), max);
      const responseLen = Math.max(1, Math.min(max - promptLen, bucket(Math.max(1, ...fitted.map((f) => f[1].length)), max)));
      const packed = packSequences(fitted.map((f) => f[0].slice(-promptLen)), fitted.map((f) => f[1].slice(-responseLen)), responseLen, promptLen);
      const device = toDevice(packed);
      out.push(...(await toHost(this.#score(this.#model.params, device))).subarray(0, ps.length));
      release(device);
    }
    return out;
  }

  dispose(): void {
    this.#score.dispose();
    disposeModel(this.#model);
  }
}

/** Round lengths up so compiled scoring functions are reused across batches. */
function bucket(n: number, max: number): number {
  return Math.min(max, Math.ceil(n / 16) * 16);
}

function fitToContext(prompt: number[], completion: number[], max: number): [number[], number[]] {
  const c = completion.slice(Math.max(0, completion.length - (max - 1)));
  const room = max - bucket(Math.max(1, c.length), max);
  const p = prompt.slice(Math.max(0, prompt.length - Math.max(1, room)));
  return [p.length > 0 ? p : prompt.slice(0, 1), c];
}

type RewardFunction = (prompts: string[], completions: string[]) => number[] | Promise<number[]>;

/** A module exporting `reward` (or a default export) that returns one number per completion. */
export class ModuleRewardSource implements RewardSource {
  readonly name: string;
  readonly #fn: RewardFunction;

  constructor(name: string, fn: RewardFunction) {
    this.name = name;
    this.#fn = fn;
  }

  static async load(path: string): Promise<ModuleRewardSource> {
    const mod = (await import(pathToFileURL(resolve(path)).href)) as { reward?: unknown; default?: unknown };
    const fn = mod.reward ?? mod.default;
    if (typeof fn !== "function") throw new RewardSourceError(`${path}: a reward module must export a function \`reward(prompts, completions)\``);
    return new ModuleRewardSource(`module:${path}`, fn as RewardFunction);
  }

  async score(prompts: string[], completions: string[]): Promise<number[]> {
    const scores = await this.#fn(prompts, completions);
    if (!Array.isArray(scores) || scores.length !== completions.length || scores.some((x) => typeof x !== "number" || !Number.isFinite(x))) {
      throw new RewardSourceError(`${this.name}: reward() must return ${completions.length} finite numbers, got ${JSON.stringify(scores).slice(0, 200)}`);
    }
    return scores;
  }

  dispose(): void {}
}

/** Σ weight · source, e.g. an RM plus a small programmatic length penalty. */
export class WeightedRewardSource implements RewardSource {
  readonly name: string;
  readonly #parts: { source: RewardSource; weight: number }[];

  constructor(parts: { source: RewardSource; weight: number }[]) {
    this.#parts = parts;
    this.name = parts.map((p) => (p.weight === 1 ? p.source.name : `${p.weight}*${p.source.name}`)).join(" + ");
  }

  async score(prompts: string[], completions: string[]): Promise<number[]> {
    const total = new Array<number>(completions.length).fill(0);
    for (const { source, weight } of this.#parts) {
      (await source.score(prompts, completions)).forEach((s, i) => (total[i]! += weight * s));
    }
    return total;
  }

  takeMetrics(): Record<string, number> {
    return Object.assign({}, ...this.#parts.map((p) => p.source.takeMetrics?.() ?? {}));
  }

  dispose(): void {
    for (const p of this.#parts) p.source.dispose();
  }
}

/**
 * A reward-model ensemble: every member scores every completion, less its offset (its mean score on
 * its training responses; reward-ensemble.ts memberOffsets), and the score is their mean, min or
 * mean − λ·variance (algorithms/ensemble-reward.ts). The members' std of each completion is kept
 * until takeMetrics() reports its mean as objective/rm_ensemble_std, or lastStd() hands it over.
 */
export class EnsembleRewardSource implements RewardSource {
  readonly name: string;
  readonly #members: readonly RewardSource[];
  readonly #offsets: readonly number[];
  readonly #options: EnsembleOptions;
  #std: number[] = [];
  #pending: number[] = [];

  constructor(name: string, members: readonly RewardSource[], offsets: readonly number[], options: EnsembleOptions = defaultEnsembleOptions) {
    this.name = `${name}(${options.ensemble_reduce === "uwo" ? `uwo λ=${options.uwo_lambda}` : options.ensemble_reduce})`;
    this.#members = members;
    this.#offsets = offsets;
    this.#options = options;
  }

  static async load(dir: string, memberDirs: string[], options?: EnsembleOptions): Promise<EnsembleRewardSource> {
    const offsets = memberOffsets(memberDirs);
    const members: RewardSource[] = [];
    try {
      for (const m of memberDirs) members.push(await RewardModelSource.load(m));
    } catch (err) {
      for (const m of members) m.dispose();
      throw err;
    }
    return new EnsembleRewardSource(`ensemble:${dir}`, members, offsets, options);
  }

  async score(prompts: string[], completions: string[]): Promise<number[]> {
    const scores: number[][] = [];
    for (const [i, m] of this.#members.entries()) scores.push((await m.score(prompts, completions)).map((s) => s - this.#offsets[i]!));
    const { rewards, std } = reduceEnsemble(scores, this.#options);
    this.#std = std;
    this.#pending.push(...std);
    return rewards;
  }

  /** The members' std of each completion of the last score() call. */
  lastStd(): number[] {
    return [...this.#std];
  }

  takeMetrics(): Record<string, number> {
    if (this.#pending.length === 0) return {};
    const std = this.#pending.reduce((a, x) => a + x, 0) / this.#pending.length;
    this.#pending = [];
    return { "objective/rm_ensemble_std": std };
  }

  dispose(): void {
    for (const m of this.#members) m.dispose();
  }
}

/**
 * Builds a reward source from CLI specs: each `PATH` or `PATH@WEIGHT`, where PATH is a reward-model
 * directory, an ensemble directory (reduced by `ensemble`) or a .js/.mjs/.ts module. Several specs
 * are summed with their weights.
 */
export async function loadRewardSource(specs: string[], ensemble: EnsembleOptions = defaultEnsembleOptions): Promise<RewardSource> {
  if (specs.length === 0) throw new RewardSourceError("no reward source given (--reward PATH)");
  const parts: { source: RewardSource; weight: number }[] = [];
  for (const spec of specs) {
    const at = spec.lastIndexOf("@");
    const path = at > 0 ? spec.slice(0, at) : spec;
    const weight = at > 0 ? Number(spec.slice(at + 1)) : 1;
    if (!Number.isFinite(weight)) throw new RewardSourceError(`reward spec "${spec}": the weight after @ must be a number`);
    if (!existsSync(path)) throw new RewardSourceError(`reward source not found: ${path}`);
    const isModule = statSync(path).isFile() && /\.(m?js|ts|mts)$/.test(path);
    const members = isModule ? null : ensembleMemberDirs(path);
    const source = isModule ? await ModuleRewardSource.load(path) : members ? await EnsembleRewardSource.load(path, members, ensemble) : await RewardModelSource.load(path);
    parts.push({ source, weight });
  }
  return parts.length === 1 && parts[0]!.weight === 1 ? parts[0]!.source : new WeightedRewardSource(parts);
}

