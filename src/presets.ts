import { relevance, type RelevanceOptions } from '../strategies/relevance/index.js';
import { truncate, type TruncateOptions } from '../strategies/truncate/index.js';
import { invalidOption } from './errors.js';
import type { Strategy } from './strategy.js';

/** Options a preset may read; each preset takes the part it knows. */
export interface PresetOptions {
  truncate?: TruncateOptions;
  relevance?: RelevanceOptions;
}

type PresetFactory = (options: PresetOptions) => Strategy;

const PRESETS: Record<string, PresetFactory> = {
  truncate: (options) => truncate(options.truncate),
  relevance: (options) => relevance(options.relevance),
  // Relevance with a larger recency window: for chat routes where the last few turns carry the
  // thread. Summaries join it in a later version.
  balanced: (options) => relevance({ recencyShare: 0.3, ...options.relevance }),
};

/**
 * The preset used when none is named: the best one this version ships. `relevance` keeps
 * 0.80 of LoCoMo evidence turns at 2k tokens where `truncate` keeps 0.11 (bench/RESULTS.md).
 */
export const DEFAULT_PRESET = 'relevance';

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

export function isPresetName(name: unknown): name is string {
  return typeof name === 'string' && Object.hasOwn(PRESETS, name);
}

/** Build a named pipeline. Throws `options.invalid` naming the option for an unknown name. */
export function createPreset(name: string, options: PresetOptions = {}, option = 'preset'): Strategy {
  if (!isPresetName(name)) invalidOption(option, `one of ${presetNames().join(', ')}`, name);
  return PRESETS[name]!(options);
}
