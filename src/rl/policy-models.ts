// The policy an on-policy run trains, and how its passes read it. Full fine-tuning trains a copy of
// the starting weights and keeps the starting weights as the frozen reference. With --use_peft the
// run trains a LoRA adapter on the starting weights, which stay frozen and are held once: every
// pass of the policy reads them under the adapter, and the reference is the same architecture on
// them alone (the adapter off, as TRL's reference for a PEFT model), so no second copy exists.
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
  /** The reference's parameters: the starting weights, only ever read. */
  reference: Params;
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
 * seeded by `seed`, trained with lora_dropout when `dropout` (TRL's disable_dropout off).
 */
export function policyModels(model: LoadedModel, fields: PeftFields, options: { seed: number; dropout: boolean }): PolicyModels {
  if (!fields.use_peft) return { arch: model.arch, reference: model.params, frozen: {}, fresh: () => copyParams(model.params) };
  const { arch, config } = adapterArch(model, fields, "CAUSAL_LM", options.dropout);
  const dropout = options.dropout && config.lora_dropout > 0;
  return {
    arch,
    reference: model.params,
    frozen: model.params,
    adapter: config,
    ...(dropout ? { dropoutSeed: options.seed } : {}),
    fresh: () => initAdapter(model.arch, config, model.params, options.seed),
  };
}

/** What a trainer is given of its policy: the architecture, reference and frozen parts, and the trained parameters (a fresh run's or a resumed one's). */
export type PolicyParts = Pick<PolicyModels, "arch" | "reference"> & Partial<Pick<PolicyModels, "frozen" | "dropoutSeed" | "adapter">> & { policy: Params };

/** The PolicyUpdater options of a trainer's policy, with a resumed run's moments. */
export function updaterOptions(models: Partial<Pick<PolicyModels, "frozen" | "dropoutSeed">>, optimizer: AdamWState | undefined): UpdaterOptions {
  return { optimizer, frozen: models.frozen ?? {}, rngSeed: models.dropoutSeed };
}
