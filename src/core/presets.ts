import { relevance, type RelevanceOptions } from '../../strategies/relevance/index.js';
import { summarize, type SummarizeStrategyOptions } from '../../strategies/summarize/index.js';
import { truncate, type TruncateOptions } from '../../strategies/truncate/index.js';
import { pipeline } from './strategy.js';
import { invalidOption } from './errors.js';
import type { Strategy } from './strategy.js';

/** Options a preset may read; each preset takes the part it knows. */
export interface PresetOptions {
  truncate?: TruncateOptions;
  relevance?: RelevanceOptions;
  summarize?: SummarizeStrategyOptions;
}

type PresetFactory = (options: PresetOptions) => Strategy;

const PRESETS: Record<string, PresetFactory> = {
  truncate: (options) => truncate(options.truncate),
  relevance: (options) => relevance(options.relevance),
  // Rolling summaries of old chunks, then recency for what is still over budget.
  summarize: (options) => pipeline('summarize', [summarize(options.summarize), truncate(options.truncate)]),
  // Summaries of old chunks, relevance-selected turns from the middle, the recent turns verbatim.
  balanced: (options) =>
    pipeline('balanced', [summarize({ summaryShare: 0.1, keepSource: true, ...options.summarize }), relevance({ recencyShare: 0.2, ...options.relevance })]),
};

/**
 * The preset used when none is named: the best one this version ships. `relevance` keeps
 * 0.85 of LoCoMo evidence turns at 2k tokens where `truncate` keeps 0.11 (bench/RESULTS.md).
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
