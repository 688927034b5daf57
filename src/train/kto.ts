// KTO (TRL's KTOTrainer) on the shared training loop. Every example is one labelled completion;
// for loss_type "kto" it also carries a mismatched completion, another example's, on which the
// batch's KL reference point is estimated. Those are chosen once, before training, as TRL chooses
// them (each example takes its batch neighbour's completion), so a resumed run sees the same ones.
// A batch of B examples is one forward pass over B completion rows and, for "kto", B KL rows. The
// reference model's log-probs of both are computed once, before training, and travel with the
// examples (preference.ts: what KTO shares with DPO).
import { fromHost } from "../engine/arrays.ts";
import { HostRng } from "../engine/random.ts";
import type { Array } from "../engine/runtime.ts";
import { ktoLosses, ktoUsesKl } from "../algorithms/kto.ts";
import { fitKtoExample, type KtoExample } from "../data/kto-data.ts";
import type { Architecture } from "../models/architecture.ts";
import type { Params } from "../models/types.ts";
import type { CompletionSequences } from "./batching.ts";
import { checkKTOConfig, type KTOTrainingConfig } from "./kto-config.ts";
import { completionHeadLoss, fitExamples, preferenceLimits, preferenceMaxLength, preferenceSequences, referenceLogps, type PreferenceLayout } from "./preference.ts";
import type { HeadLoss } from "./step.ts";
import type { DeviceBatch, TrainTask } from "./trainer.ts";

/** An example with its mismatched completion (null when the loss type has no KL term). */
export interface KtoPaired extends KtoExample {
  klCompletion: number[] | null;
}

/** An example with the reference model's sequence log-probs of its completion and its KL completion. */
export interface KtoItem extends KtoPaired {
  refLogp: number;
  refKlLogp: number | null;
}

export interface KtoBatch extends CompletionSequences {
  // inputIds … completionMask: [R, T], the B completion rows, then (kto) the B KL rows
  reference: Array; // [B]
  referenceKl?: Array; // [B], kto only
  labels: Array; // [B] float32, 1 desirable
}

/** Examples cut to the config's lengths (fitKtoExample), and how many were cut. */
export function fitKtoExamples(examples: readonly KtoExample[], config: KTOTrainingConfig, arch: Architecture): { examples: KtoExample[]; truncated: number } {
  return fitExamples(examples, fitKtoExample, config, arch);
}

/**
 * TRL's mismatched pairs: along `order`, in consecutive groups of `groupSize` (the batches), each
 * example takes the completion of the one before it in its group, the first the last's, so a
 * group's KL completions are its own completions on other prompts. A last group of one joins the
 * one before it. Each is cut to what its prompt leaves (max_length, max_completion_length).
 */
export function withKlCompletions(examples: readonly KtoExample[], order: readonly number[], groupSize: number, config: KTOTrainingConfig, arch: Architecture): KtoPaired[] {
  const limits = preferenceLimits(config, arch);
  const out: KtoPaired[] = examples.map((e) => ({ ...e, klCompletion: null }));
  for (let from = 0; from < order.length; ) {
    let to = Math.min(order.length, from + groupSize);
    if (order.length - to === 1) to = order.length;
    const group = order.slice(from, to);
    group.forEach((i, j) => {
      const e = examples[i]!;
      const partner = examples[group[(j + group.length - 1) % group.length]!]!;
      out[i]!.klCompletion = fitKtoExample({ prompt: e.prompt, completion: partner.completion, label: e.label }, limits).example.completion;
    });
    from = to;
  }
  return out;
}

/**
 * The mismatched completions of a run's splits, grouped as the shared loop batches them: the
 * training examples in the order of train()'s first epoch (HostRng(seed)'s shuffle) in groups of
 * per_device_train_batch_size, so that in that epoch every batch estimates its KL term on its own
 * completions, as TRL's sequential batches do (later epochs reshuffle the batches but keep the
 * pairs); the held-out ones in file order in groups of per_device_eval_batch_size, as evaluated.
 * Deterministic given the seed. Without a KL term (apo_zero_unpaired) there are none.
 */
export function withKlSplits(data: { train: readonly KtoExample[]; eval: readonly KtoExample[] }, config: KTOTrainingConfig, arch: Architecture): { train: KtoPaired[]; eval: KtoPaired[] } {
  if (!ktoUsesKl(config.loss_type)) return { train: data.train.map((e) => ({ ...e, klCompletion: null })), eval: data.eval.map((e) => ({ ...e, klCompletion: null })) };
  const indices = (n: number) => Array.from({ length: n }, (_, i) => i);
  const firstEpoch = new HostRng(config.seed).shuffle(indices(data.train.length));
  return {
    train: withKlCompletions(data.train, firstEpoch, config.per_device_train_batch_size, config, arch),
    eval: withKlCompletions(data.eval, indices(data.eval.length), config.per_device_eval_batch_size, config, arch),
  };
}

/** An example's rows: its completion, then its KL completion when it has one. */
export const ktoLayout: PreferenceLayout<KtoPaired> = { completions: (e) => (e.klCompletion ? [e.completion, e.klCompletion] : [e.completion]), average: false };

/** An example with its reference log-probs [completion, KL completion?] (as referenceLogps gives them). */
export function ktoItem(e: KtoPaired, [refLogp, refKlLogp]: readonly number[]): KtoItem {
  return { ...e, refLogp: refLogp!, refKlLogp: e.klCompletion ? refKlLogp! : null };
}

/**
 * The reference model's sequence log-probs of every example's completion and KL completion,
 * computed once (no gradient), in batches of similar length. `params` are borrowed.
 */
export async function withReferenceLogps(
  arch: Architecture,
  params: Params,
  examples: readonly KtoPaired[],
  config: KTOTrainingConfig,
  padId: number,
  onProgress?: (done: number, total: number) => void,
): Promise<KtoItem[]> {
  const options = { maxLength: preferenceMaxLength(config, arch), batchSize: config.per_device_eval_batch_size, padId };
  const logps = await referenceLogps(arch, params, examples, ktoLayout, options, onProgress);
  return examples.map((e, i) => ktoItem(e, logps[i]!));
}

/** The device batch with the cached reference log-probs; its weight is the example count. */
export function ktoBatch(items: readonly KtoItem[], maxLength: number, padId: number): DeviceBatch<KtoBatch> {
  const { sequences, tokens } = preferenceSequences(items, ktoLayout, maxLength, padId);
  const n = items.length;
  const batch: KtoBatch = {
    ...sequences,
    reference: fromHost(items.map((e) => e.refLogp), [n]),
    labels: fromHost(items.map((e) => (e.label ? 1 : 0)), [n]),
    ...(items[0]?.klCompletion ? { referenceKl: fromHost(items.map((e) => e.refKlLogp!), [n]) } : {}),
  };
  return { batch, tokens, weight: n };
}

/**
 * The config's KTO loss over a batch, with TRL's metrics (kl, rewards/*_sum, logps/*_sum, count/*).
 * The KL rows reach it only through the reference point z₀, a constant: the step may run them
 * forward only, apart from the completions (RowValues).
 */
export function ktoHeadLoss(arch: Architecture, config: KTOTrainingConfig): HeadLoss<KtoBatch, Record<string, never>> {
  const loss = ktoLosses[config.loss_type];
  const completionsThenKl = (b: KtoBatch) => [{ rows: b.labels.shape[0]! }, ...(b.referenceKl ? [{ rows: b.labels.shape[0]!, constant: true }] : [])];
  return completionHeadLoss<KtoBatch>(
    arch,
    ktoLayout.average,
    (logps, b) => {
      const size = b.labels.shape[0]!;
      const kl = b.referenceKl ? { policyKl: logps.ref.slice([size, 2 * size]), referenceKl: b.referenceKl } : {};
      return loss({ policy: logps.slice([0, size]), reference: b.reference, labels: b.labels, ...kl }, config);
    },
    completionsThenKl,
  );
}

/** The shared trainer's task for KTO over examples that already carry their reference log-probs. */
export function ktoTask(
  arch: Architecture,
  config: KTOTrainingConfig,
  data: { train: KtoItem[]; eval: KtoItem[] },
  save: Pick<TrainTask<KtoItem, KtoBatch>, "modelConfig" | "tokenizer" | "generationConfig">,
  padId: number,
): TrainTask<KtoItem, KtoBatch> {
  checkKTOConfig(config);
  const maxLength = preferenceMaxLength(config, arch);
  return {
    kind: "kto",
    config,
    ...save,
    train: data.train,
    eval: data.eval,
    fingerprintOf: (e) => [...e.prompt, -1, ...e.completion, e.label ? -2 : -3, ...(e.klCompletion ?? [])],
    makeBatch: (items) => ktoBatch(items, maxLength, padId),
    loss: ktoHeadLoss(arch, config),
  };
}

/** Rows per example: the completion, and for "kto" the mismatched completion. */
export function ktoRowsPerExample(config: Pick<KTOTrainingConfig, "loss_type">): number {
  return ktoUsesKl(config.loss_type) ? 2 : 1;
}

/**
 * TRL's advice when desirable and undesirable examples are unbalanced (the KTO paper's eq. 8):
 * desirable_weight · n_desirable should be 1 to 4/3 times undesirable_weight · n_undesirable.
 * Null when the weights are in range (or the counts equal).
 */
export function ktoWeightAdvice(examples: readonly KtoExample[], config: Pick<KTOTrainingConfig, "desirable_weight" | "undesirable_weight">): string | null {
  const desirable = Math.max(1, examples.filter((e) => e.label).length);
  const undesirable = Math.max(1, examples.length - desirable);
  if (desirable === undesirable) return null;
  const round = (x: number) => Math.round(x * 100) / 100;
  const [dLow, dHigh] = [round((undesirable * config.undesirable_weight) / desirable), round(((undesirable * config.undesirable_weight) / desirable) * 1.33)];
  const [uLow, uHigh] = [round((desirable * config.desirable_weight) / undesirable / 1.33), round((desirable * config.desirable_weight) / undesirable)];
  const inRange = (dLow <= config.desirable_weight && config.desirable_weight <= dHigh) || (uLow <= config.undesirable_weight && config.undesirable_weight <= uHigh);
  return inRange ? null : `${desirable} desirable and ${undesirable} undesirable examples: set desirable_weight in [${dLow}, ${dHigh}] or undesirable_weight in [${uLow}, ${uHigh}] (not both)`;
}

/**
 * The per-example means TRL prints, from a logged record's sums and counts (a record's values are
 * means over its micro-batches, so their ratios weigh every example once): rewards/chosen,
 * rewards/rejected and their margin, logps/chosen and logps/rejected. `prefix` "eval_" reads a
 * held-out record. NaN where a record had no example of that kind.
 */
export function ktoMeans(record: Record<string, number>, prefix = ""): { chosen: number; rejected: number; margin: number; logpsChosen: number; logpsRejected: number; kl: number } {
  const per = (sum: string, kind: "chosen" | "rejected") => record[`${prefix}${sum}/${kind}_sum`]! / record[`${prefix}count/${kind}`]!;
  const [chosen, rejected] = [per("rewards", "chosen"), per("rewards", "rejected")];
  return { chosen, rejected, margin: chosen - rejected, logpsChosen: per("logps", "chosen"), logpsRejected: per("logps", "rejected"), kl: record[`${prefix}kl`]! };
}
