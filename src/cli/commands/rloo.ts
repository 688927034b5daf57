// `rlhf rloo`: the same command as `rlhf grpo` (see grpo.ts) with leave-one-out advantages and the
// KL to the reference in the reward, under TRL's RLOOConfig defaults.
import { rloo } from "../../rl/group-trainer.ts";
import { defaultRlooRunConfig } from "../../rl/group-config.ts";
import { groupCommand } from "./grpo.ts";

export const command = groupCommand(rloo, defaultRlooRunConfig);
