import { cacheAware, type CacheAwareOptions } from './cache-aware/index.js';
import { relevance, type RelevanceOptions } from './relevance/index.js';
import { summarize, summaryFold, type SummarizeStrategyOptions } from './summarize/index.js';
import { truncate, type TruncateOptions } from './truncate/index.js';
import { toolResults, type ToolResultsOptions } from './tool-results/index.js';
import { pipeline } from '../src/core/strategy.js';
import { invalidOption } from '../src/core/errors.js';
import { defineOptions, rules } from '../src/core/define-options.js';
import type { Strategy } from '../src/core/strategy.js';

/** Options a preset may read, under the names of the strategies they configure (as the presets are written: `'cache-aware'`); each preset takes the part it knows. */
export interface PresetOptions {
  truncate?: TruncateOptions;
  relevance?: RelevanceOptions;
  summarize?: SummarizeStrategyOptions;
  'cache-aware'?: CacheAwareOptions;
  /** The tool-output stage every preset starts with (a no-op on histories without tool results). */
  'tool-results'?: ToolResultsOptions;
}

export const PRESET_OPTIONS = defineOptions<PresetOptions>({
  factory: 'presetOptions',
  defaults: {},
  rules: { truncate: rules.object, relevance: rules.object, summarize: rules.object, 'cache-aware': rules.object, 'tool-results': rules.object },
  docs: [['strategies/presets.ts', 'PresetOptions']],
});

type PresetFactory = (options: PresetOptions) => Strategy;

// Every preset starts with the tool-output stage: older tool results cleared (ids and values kept)
// under the budget only where that lowers the bill, over it in deep steps, huge results cut at
// ingestion. On a chat history without tool results it changes nothing.
const withTools = (name: string, options: PresetOptions, stages: readonly Strategy[]): Strategy =>
  pipeline(name, [toolResults(options['tool-results']), ...stages]);

const PRESETS: Record<string, PresetFactory> = {
  truncate: (options) => withTools('truncate', options, [truncate(options.truncate)]),
  // The recent turns in a window that moves in steps (cached between them), and excerpts for the latest message sized by the model's cache price.
  'cache-aware': (options) => withTools('cache-aware', options, [cacheAware(options['cache-aware'])]),
  relevance: (options) => withTools('relevance', options, [relevance(options.relevance)]),
  // Rolling summaries of old chunks, then recency for what is still over budget.
  summarize: (options) => withTools('summarize', options, [summarize(options.summarize), truncate(options.truncate)]),
  // Summaries of old chunks, relevance-selected turns from the middle, the recent turns verbatim.
  balanced: (options) =>
    withTools('balanced', options, [summaryFold({ summaryShare: 0.1, ...options.summarize }), relevance({ recencyShare: 0.2, ...options.relevance })]),
};

/**
 * The preset used when none is named, as the bench recommends it (bench/RESULTS.md): of the
 * presets that never raise the prompt bill under the 50% and 10% cache rules, `cache-aware` keeps
 * the most evidence on the live path while saving at least half of what the best-saving one saves.
 * `relevance` keeps more (0.85 at 2k tokens) but rewrites the prompt's front every turn, which
 * costs more than sending everything wherever cached tokens cost a tenth.
 */
export const DEFAULT_PRESET = 'cache-aware';

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

export function isPresetName(name: unknown): name is string {
  return typeof name === 'string' && Object.hasOwn(PRESETS, name);
}

/** Build a named pipeline. Throws `options.invalid` naming the option for an unknown name. */
export function createPreset(name: string, options: PresetOptions = {}, option = 'preset'): Strategy {
  if (!isPresetName(name)) invalidOption(option, `one of ${presetNames().join(', ')}`, name);
  return PRESETS[name]!(PRESET_OPTIONS.parse(options, 'presetOptions'));
}
