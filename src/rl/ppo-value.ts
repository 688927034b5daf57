// PPO's value model at the start of a run: the reward model at `source` (TRL's choice: it starts out
// predicting something like the score), or a fresh scalar head on a copy of the policy's backbone.
import { architectureFor } from "../models/architecture.ts";
import { isSequenceClassifier } from "../models/config.ts";
import { loadModel, type LoadedModel } from "../models/load.ts";
import { copyParams } from "../models/params.ts";
import { rewardModelFromCausalLm } from "../train/reward.ts";
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
