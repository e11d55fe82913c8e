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
  balanced: (options) => relevance({ recencyShare: 0.5, ...options.relevance }),
};

/** The preset used when none is named: the best one this version ships. */
export const DEFAULT_PRESET = 'truncate';

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
