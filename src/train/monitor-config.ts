// The reward-hacking monitors' settings, shared by every on-policy trainer (config.ts spreads them
// into OnPolicyRunFields and their specs into onPolicyRunSpecs): what a firing does, and each
// monitor's threshold (null turns that monitor off). docs/monitors.md gives each default's reason.

export type MonitorAction = "warn" | "checkpoint" | "stop";

export interface MonitorFields {
  /** What a firing does besides its line in DIR/events.jsonl and on the console: warn only, keep that step's checkpoint, or stop the run. */
  monitor_action: MonitorAction;
  /** Steps of the rolling baselines (length, update spikes; KL acceleration compares two such windows). */
  monitor_window: number;
  /** Mean completion length over its rolling median: fires above this or below its inverse. */
  monitor_length_jump: number | null;
  /** KL to the reference per completion token (nats): fires above this. */
  monitor_kl_ceiling: number | null;
  /** KL's rise over the last window against the window before: fires above this ratio. */
  monitor_kl_acceleration: number | null;
  /** Entropy per token over its mean on the first 5 steps: fires below this. */
  monitor_entropy_collapse: number | null;
  /** Share of a step's scores outside the reward model's training [p1, p99] (reward_stats.json): fires above this. */
  monitor_reward_ood: number | null;
  /** Distinct-2 of a step's completions over its mean on the first 5 steps: fires below this. */
  monitor_repetition: number | null;
  /** Share of completions without EOS: fires at or above this (see docs/monitors.md for when). */
  monitor_truncated_share: number | null;
  /** PPO's approximate KL of the updates over its rolling median: fires above this. */
  monitor_approxkl_spike: number | null;
  /** The updates' clipped share over its rolling median: fires above this. */
  monitor_clipfrac_spike: number | null;
  /** PPO's value loss over its rolling median: fires above this. */
  monitor_value_loss_blowup: number | null;
  /** A reward-model ensemble's members' std over its mean on the first 5 steps, while the mean score rises: fires above this. */
  monitor_rm_disagreement: number | null;
}

export const monitorDefaults: MonitorFields = {
  monitor_action: "warn",
  monitor_window: 10,
  monitor_length_jump: 1.5,
  monitor_kl_ceiling: 0.5,
  monitor_kl_acceleration: 3,
  monitor_entropy_collapse: 0.5,
  monitor_reward_ood: 0.5,
  monitor_repetition: 0.75,
  monitor_truncated_share: 0.95,
  monitor_approxkl_spike: 5,
  monitor_clipfrac_spike: 5,
  monitor_value_loss_blowup: 10,
  monitor_rm_disagreement: 2,
};
