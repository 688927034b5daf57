// The policy an on-policy run trains, and how its passes read it. Full fine-tuning trains a copy of
// the starting weights and keeps the starting weights as the frozen reference. With --use_peft the
// run trains a LoRA adapter on the starting weights, which stay frozen and are held once: every
// pass of the policy reads them under the adapter, and the reference is the same architecture on
// them alone (the adapter off, as TRL's reference for a PEFT model), so no second copy exists.
// A reference model of its own (--ref-model, TRL's ref_model) replaces either: its weights under
// its own architecture, whatever the policy trains (the loop leashes a round's policy, started
// from the previous round's, to the SFT model this way).
import type { Architecture } from "../models/architecture.ts";
import type { LoadedModel } from "../models/load.ts";
import { initAdapter, type LoraConfig } from "../models/lora.ts";
import { copyParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import type { AdamWState } from "../engine/optim.ts";
import { adapterArch, type PeftFields } from "../train/peft-config.ts";
import type { UpdaterOptions } from "./policy-updater.ts";

export interface PolicyModels {
  /** The trained policy's architecture (an attached adapter runs when the parameters hold it). */
  arch: Architecture;
  /** The reference's parameters: the starting weights (or --ref-model's), only ever read. */
  reference: Params;
  /** The architecture the reference runs under when it is a model of its own (--ref-model); absent: the policy's `arch`. */
  referenceArch?: Architecture;
  /** Parameters every policy pass reads under the trained ones (LoRA's frozen base; {} otherwise). */
  frozen: Params;
  /** The trained adapter's config (LoRA), saved with it. */
  adapter?: LoraConfig;
  /** Seeds the training passes' dropout keys (LoRA with dropout on); unset without dropout. */
  dropoutSeed?: number;
  /** The trained parameters of a fresh run: a copy of the starting weights, or a fresh adapter. */
  fresh(): Params;
}

/**
 * The policy models of a run on `model` (borrowed for the run): with `fields.use_peft` an adapter
 * seeded by `seed`, trained with lora_dropout when `dropout` (TRL's disable_dropout off); with
 * `referenceModel` (borrowed too) that model is the reference instead of the starting weights.
 */
export function policyModels(model: LoadedModel, fields: PeftFields, options: { seed: number; dropout: boolean }, referenceModel?: LoadedModel): PolicyModels {
  const reference = referenceModel ? { reference: referenceModel.params, referenceArch: referenceModel.arch } : { reference: model.params };
  if (!fields.use_peft) return { arch: model.arch, ...reference, frozen: {}, fresh: () => copyParams(model.params) };
  const { arch, config } = adapterArch(model, fields, "CAUSAL_LM", options.dropout);
  const dropout = options.dropout && config.lora_dropout > 0;
  return {
    arch,
    ...reference,
    frozen: model.params,
    adapter: config,
    ...(dropout ? { dropoutSeed: options.seed } : {}),
    fresh: () => initAdapter(model.arch, config, model.params, options.seed),
  };
}

/** What a trainer is given of its policy: the architecture, reference and frozen parts, and the trained parameters (a fresh run's or a resumed one's). */
export type PolicyParts = Pick<PolicyModels, "arch" | "reference"> & Partial<Pick<PolicyModels, "referenceArch" | "frozen" | "dropoutSeed" | "adapter">> & { policy: Params };

/** The PolicyUpdater options of a trainer's policy, with a resumed run's moments. */
export function updaterOptions(models: Partial<Pick<PolicyModels, "frozen" | "dropoutSeed">>, optimizer: AdamWState | undefined): UpdaterOptions {
  return { optimizer, frozen: models.frozen ?? {}, rngSeed: models.dropoutSeed };
}
