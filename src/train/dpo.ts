// Direct Preference Optimisation (TRL's DPOTrainer) on the shared training loop. A pair is two
// rows, prompt + chosen and prompt + rejected; a batch of B pairs is one forward pass over 2B rows,
// every chosen row and then every rejected row (TRL's concatenated_forward). The reference model's
// log-probs of every pair are computed once, before training, and travel with the examples
// (preference.ts: what DPO shares with KTO).
import { fromHost } from "../engine/arrays.ts";
import { chosenNll, dpoLosses, dpoUsesAverageLogps } from "../algorithms/dpo.ts";
import { np } from "../engine/runtime.ts";
import { fitDpoExample, type DpoExample } from "../data/dpo-data.ts";
import type { Architecture } from "../models/architecture.ts";
import type { Params } from "../models/types.ts";
import type { Array } from "../engine/runtime.ts";
import type { CompletionSequences } from "./batching.ts";
import { checkDPOConfig, type DPOConfig } from "./dpo-config.ts";
import { completionHeadLoss, fitExamples, preferenceMaxLength, preferenceSequences, referenceLogps, type PreferenceLayout } from "./preference.ts";
import type { HeadLoss } from "./step.ts";
import type { DeviceBatch, TrainTask } from "./trainer.ts";

/** A pair with the reference model's sequence log-probs of its completions. */
export interface DpoPair extends DpoExample {
  refChosen: number;
  refRejected: number;
}

export interface DpoBatch extends CompletionSequences {
  // inputIds … completionMask: [2B, T], the B chosen rows, then the B rejected rows
  refChosen: Array; // [B]
  refRejected: Array; // [B]
}

/** A pair's rows: chosen, then rejected. */
const pairCompletions = (e: DpoExample) => [e.chosen, e.rejected];

/** DPO's rows, and its log-probs: length-averaged for IPO, else summed. */
export function dpoLayout(config: Pick<DPOConfig, "loss_type">): PreferenceLayout<DpoExample> {
  return { completions: pairCompletions, average: dpoUsesAverageLogps(config.loss_type) };
}

/**
 * The config's DPO loss over a batch, with TRL's metrics (rewards/*, logps/*). It reads a pair's rows
 * through their sequence log-probs only, so the step may differentiate the chosen rows and the
 * rejected rows one after the other (RowValues).
 */
export function dpoLoss(arch: Architecture, config: DPOConfig): HeadLoss<DpoBatch, Record<string, never>> {
  const loss = dpoLosses[config.loss_type];
  const average = dpoLayout(config).average;
  const chosenThenRejected = (b: DpoBatch) => [{ rows: b.refChosen.shape[0]! }, { rows: b.refChosen.shape[0]! }];
  return completionHeadLoss<DpoBatch>(
    arch,
    average,
    (logps, b) => {
      const pairs = b.refChosen.shape[0]!;
      const chosen = logps.ref.slice([0, pairs]);
      const out = loss({ policyChosen: config.rpo_alpha === null ? chosen : chosen.ref, policyRejected: logps.slice([pairs, 2 * pairs]), refChosen: b.refChosen, refRejected: b.refRejected }, config);
      if (config.rpo_alpha === null) return out;
      const nll = rpoNll(chosen, b, pairs, average);
      return { loss: out.loss.add(nll.ref.mul(config.rpo_alpha)), metrics: { ...out.metrics, nll_loss: nll } };
    },
    chosenThenRejected,
  );
}

/**
 * RPO's NLL of the chosen rows (the first `pairs` rows) from their sequence log-probs: each row's
 * completion tokens are counted as the log-probs were (the mask from position 1), and averaged
 * log-probs (IPO) are turned back into sums first.
 */
function rpoNll(chosen: Array, b: DpoBatch, pairs: number, average: boolean): Array {
  const t = b.completionMask.shape[1]!;
  const tokens = np.sum(b.completionMask.ref.slice([0, pairs], [1, t]), 1); // [B]
  return chosenNll(average ? chosen.mul(tokens.ref) : chosen, tokens);
}

/** Pairs cut to the config's lengths (see fitDpoExample), and how many were cut. */
export function fitDpoExamples(examples: readonly DpoExample[], config: DPOConfig, arch: Architecture): { examples: DpoExample[]; truncated: number } {
  return fitExamples(examples, fitDpoExample, config, arch);
}

/** A pair with its reference log-probs [chosen, rejected] (as referenceLogps gives them). */
export function dpoPair(e: DpoExample, [refChosen, refRejected]: readonly number[]): DpoPair {
  return { ...e, refChosen: refChosen!, refRejected: refRejected! };
}

/**
 * The reference model's sequence log-probs of every pair, computed once (no gradient), summed or
 * averaged as the loss type wants. Pairs go through in batches of similar length. `params` are borrowed.
 */
export async function withReferenceLogps(
  arch: Architecture,
  params: Params,
  examples: readonly DpoExample[],
  config: DPOConfig,
  padId: number,
  onProgress?: (done: number, total: number) => void,
): Promise<DpoPair[]> {
  const options = { maxLength: preferenceMaxLength(config, arch), batchSize: config.per_device_eval_batch_size, padId };
  const logps = await referenceLogps(arch, params, examples, dpoLayout(config), options, onProgress);
  return examples.map((e, i) => dpoPair(e, logps[i]!));
}

/** The device batch of pairs with their cached reference log-probs; its weight is the pair count. */
export function dpoBatch(pairs: readonly DpoPair[], maxLength: number, padId: number): DeviceBatch<DpoBatch> {
  const { sequences, tokens } = preferenceSequences(pairs, { completions: pairCompletions }, maxLength, padId);
  const batch = { ...sequences, refChosen: fromHost(pairs.map((p) => p.refChosen), [pairs.length]), refRejected: fromHost(pairs.map((p) => p.refRejected), [pairs.length]) };
  return { batch, tokens, weight: pairs.length };
}

/** The shared trainer's task for DPO over pairs that already carry their reference log-probs. */
export function dpoTask(
  arch: Architecture,
  config: DPOConfig,
  data: { train: DpoPair[]; eval: DpoPair[] },
  save: Pick<TrainTask<DpoPair, DpoBatch>, "modelConfig" | "tokenizer" | "generationConfig">,
  padId: number,
): TrainTask<DpoPair, DpoBatch> {
  checkDPOConfig(config);
  const maxLength = preferenceMaxLength(config, arch);
  return {
    kind: "dpo",
    config,
    ...save,
    train: data.train,
    eval: data.eval,
    fingerprintOf: (p) => [...p.prompt, -1, ...p.chosen, -2, ...p.rejected],
    makeBatch: (pairs) => dpoBatch(pairs, maxLength, padId),
    loss: dpoLoss(arch, config),
  };
}
