// --ensemble_reduce and --uwo_lambda for the commands that read a reward without a config of their
// own (eval, pairs); the RL trainers have them as config fields (train/config.ts's ensembleSpecs).
import { defaultEnsembleOptions, type EnsembleOptions } from "../algorithms/ensemble-reward.ts";
import { configFlags, configOverrides, ensembleSpecs, normaliseFlagNames, resolveConfig } from "../train/config.ts";

export const ensembleFlags = configFlags(ensembleSpecs, defaultEnsembleOptions) as Record<keyof EnsembleOptions, { type: "string"; help: string }>;

/** `--ensemble-reduce` accepted as `--ensemble_reduce`, as for config fields. */
export const normaliseEnsembleFlags = (argv: string[]): string[] => normaliseFlagNames(argv, ensembleSpecs);

export function ensembleOptionsOf(values: Record<string, unknown>): EnsembleOptions {
  return resolveConfig(defaultEnsembleOptions, ensembleSpecs, { overrides: configOverrides(values, ensembleSpecs) });
}
