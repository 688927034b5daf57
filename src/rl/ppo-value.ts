// PPO's value model at the start of a run: the reward model at `source` (TRL's choice: it starts out
// predicting something like the score), or a fresh scalar head on a copy of the policy's backbone.
// With LoRA it is a second adapter, its fresh head trained whole (modules_to_save), on the policy's
// frozen base: the run then holds one copy of the base for policy, reference and value, where a
// value model on a reward model's base would need that base too (and a module reward has none).
import { release } from "../engine/arrays.ts";
import { architectureFor, asSequenceClassifier, SCORE_HEAD, type Architecture } from "../models/architecture.ts";
import { isSequenceClassifier, type ModelConfig } from "../models/config.ts";
import { loadModel, type LoadedModel } from "../models/load.ts";
import { initAdapter, type LoraConfig } from "../models/lora.ts";
import { copyParams } from "../models/params.ts";
import type { Params } from "../models/types.ts";
import { adapterArch, type PeftFields } from "../train/peft-config.ts";
import { freshScoreHead, rewardModelFromCausalLm } from "../train/reward.ts";
import type { PpoModels } from "./ppo-trainer.ts";
import { RewardSourceError } from "./reward-source.ts";

/** The value model of a fresh PPO run; the policy's parameters are copied, not consumed. */
export async function initialValueModel(policy: LoadedModel, source: string | undefined, init: { seed: number; padTokenId: number }): Promise<Pick<PpoModels, "valueConfig" | "valueArch" | "value">> {
  if (source) {
    const rm = await loadModel(source);
    if (!isSequenceClassifier(rm.config)) throw new RewardSourceError(`${source} is not a reward model (sequence classifier)`);
    return { valueConfig: rm.config, valueArch: architectureFor(rm.config), value: rm.params };
  }
  // rewardModelFromCausalLm consumes what it is given.
  const value = rewardModelFromCausalLm({ ...policy, params: copyParams(policy.params) }, init);
  return { valueConfig: value.config, valueArch: value.arch, value: value.params };
}

/** A value adapter on the policy's base: its model (config, architecture with the adapter attached) and a fresh run's parameters. */
export interface ValueAdapter {
  valueConfig: ModelConfig;
  valueArch: Architecture;
  valueAdapter: LoraConfig;
  /** A fresh adapter: PEFT's init (seeded) and a fresh score head. */
  fresh(): Params;
}

/** The LoRA value model of a run on `policy`, with the policy adapter's settings (PPO trains without dropout, as TRL's PPOTrainer). */
export function valueAdapterOn(policy: LoadedModel, fields: PeftFields, init: { seed: number; padTokenId: number }): ValueAdapter {
  const valueConfig = asSequenceClassifier(policy.config, init.padTokenId);
  const classifier = architectureFor(valueConfig);
  const { arch, config } = adapterArch({ ...policy, arch: classifier }, fields, "SEQ_CLS", false);
  return {
    valueConfig,
    valueArch: arch,
    valueAdapter: config,
    fresh: () => {
      const head = { [SCORE_HEAD]: freshScoreHead(classifier.hiddenSize, init.seed) };
      // Its own seed: the same one would start its A matrices equal to the policy adapter's.
      const adapter = initAdapter(classifier, config, head, init.seed + 1);
      release(head);
      return adapter;
    },
  };
}
