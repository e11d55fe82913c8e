import type { ResponseCache } from '../cache/response-cache.js';
import type { Embedder } from '../embedders/types.js';
import { checkPrices, PRICES, type PriceTable } from '../prices.js';
import { defaultRuntime, type Runtime } from '../runtime.js';
import { DEFAULT_IMAGE_TOKENS } from '../tokens/images.js';
import { KNOWN_MODELS, type ModelInfo } from '../tokens/models.js';
import { builtinTokenizer, type TokenizerBackend, type TokenizerFactory } from '../tokens/tokenizer.js';
import { invalidOption } from '../core/errors.js';
import { checkedByFactory, defineOptions, rules } from '../core/define-options.js';
import { requireInstalled } from '../core/optional.js';
import type { OnBudgetUnreachable } from '../core/guard.js';
import type { CompactionMode } from '../core/stats.js';
import { createPreset, DEFAULT_PRESET, type PresetOptions } from '../../strategies/presets.js';
import { isStrategy, type Strategy } from '../core/strategy.js';
import { DEFAULT_LIMITS, type InputLimits } from '../core/validate.js';

export interface CompactorOptions {
  /**
   * Hard cap on prompt tokens (messages, framing, priming and tools). When the model's window is
   * also known, the smaller of the two applies.
   * @example 4000
   */
  maxInputTokens?: number;
  /**
   * Tokens kept free for the reply when the budget comes from the model's context window. The
   * request's own `max_completion_tokens` or `max_tokens` takes precedence.
   * @default 4096
   */
  reserveOutputTokens?: number;
  /**
   * Extra or overriding entries for the known-models table, matched by longest prefix.
   * @example { 'my-finetune': { contextWindow: 16000, encoding: 'o200k_base' } }
   */
  models?: Record<string, ModelInfo>;
  /**
   * Model assumed for requests that name none (the CLI and tests; most servers always send one).
   * @default undefined
   */
  defaultModel?: string;
  /**
   * The compaction strategy: a preset name or any strategy (a pipeline is a strategy).
   * @default 'cache-aware'
   */
  strategy?: string | Strategy;
  /** Options for the preset named by `strategy`. */
  presetOptions?: PresetOptions;
  /**
   * Dense embedder that relevance strategies use unless given their own: `useLite()`,
   * `transformersEmbedder(…)`, `openaiEmbedder(…)` or your own. Without one, relevance scores with
   * BM25 alone.
   * @default undefined
   */
  embedder?: Embedder;
  /**
   * Tokenizer backend. Both built-ins give identical counts (tested on the OpenAI cookbook
   * examples and a LoCoMo conversation). `gpt-tokenizer` is the default because the overhead
   * bench measured it loading o200k_base about 3.6× faster and counting a cold 1,000-message
   * history about 5× faster than `js-tiktoken` (bench/notes/HISTORY.md); `js-tiktoken` stays supported, as an
   * optional dependency (left out by `npm install --omit=optional`).
   * A factory plugs in your own (see `testing.wordTokenizer`).
   * @default 'gpt-tokenizer'
   */
  tokenizer?: TokenizerBackend | TokenizerFactory;
  /**
   * For models without a public tokenizer (Claude, Gemini, Llama…), counts are made with
   * `o200k_base` and multiplied by this, rounding up. The default pads by 10% so that budgets err
   * on the safe side; set your own from your provider's usage figures.
   * @default 1.1
   */
  approximateTokenMultiplier?: number;
  /**
   * Tokens counted for an image whose size cannot be read (a remote URL).
   * @default 765
   */
  imageTokens?: number;
  /**
   * What to do when the system prompt, the latest user message and the latest tool exchange alone exceed the budget, after older tool results were cleared and huge ones cut: throw `budget.unreachable`
   * (status 413), or send the request on uncompacted.
   * @default 'error'
   */
  onBudgetUnreachable?: OnBudgetUnreachable;
  /**
   * Response cache, a stage of the compactor: checked before any strategy runs. A hit answers the
   * request without the model (`compact()` returns `{ kind: 'cached' }`); on a miss the result
   * carries `commit(response)` to store the model's answer. Without one, nothing is cached.
   * @default undefined
   */
  cache?: ResponseCache;
  /**
   * Leave out the hints for the provider's prompt cache. By default a compacted request carries
   * Anthropic `cache_control` breakpoints where its stable part ends, and an OpenAI
   * `prompt_cache_key` stable across the conversation, unless the client set its own.
   * @default false
   */
  omitCacheHints?: boolean;
  /**
   * `shadow` runs compaction and cache lookups and reports what they would save (`stats.shadow`), but
   * sends every request as it came and serves nothing from the cache (answers are still stored, so
   * would-be hits show). A route rule, a proxy key (`mode`) or a request (`x-compactor-mode: shadow`) can ask too.
   * @default 'enforce'
   */
  mode?: CompactionMode;
  /**
   * Shadow mode: how long adapters and the proxy wait for compaction before sending the request on
   * as it came. Later figures reach `stats`, metrics and logs, not the headers (`x-compactor-shadow: pending`).
   * @default 50
   */
  shadowWaitMs?: number;
  /**
   * Extra or overriding entries for the shipped, dated price table, by model-name prefix (the
   * longest prefix wins), in US dollars per million tokens: price-aware strategies size what they
   * rewrite every turn by the model's cache discount, and OpenAI cache keys go only to models the
   * table knows as OpenAI's.
   * @default {}
   * @example { 'my-finetune': { input: 3, cachedInput: 0.3, output: 12, cacheRule: 'openai' } }
   */
  prices?: PriceTable;
  /**
   * What compactions share across requests: the embedding memo, the summary store and queue, and
   * the default sentence encoder. One per process unless you give your own (`createRuntime()`),
   * for instance to keep tests or benches apart.
   * @default defaultRuntime()
   */
  runtime?: Runtime;
  /** Limits on what a request may contain. */
  limits?: Partial<InputLimits>;
  /**
   * Bound on the per-message token-count memo, in bytes (approximate: keys are at most 512
   * characters; longer messages are keyed by their SHA-1).
   * @default 33554432 (32 MiB)
   */
  tokenCacheBytes?: number;
  /**
   * Milliseconds clock; injected in tests.
   * @default performance.now
   */
  clock?: () => number;
}

export interface ResolvedOptions {
  maxInputTokens: number | undefined;
  reserveOutputTokens: number;
  models: Record<string, ModelInfo>;
  defaultModel: string | undefined;
  strategy: Strategy;
  embedder: Embedder | undefined;
  cache: ResponseCache | undefined;
  runtime: Runtime;
  omitCacheHints: boolean;
  mode: CompactionMode;
  shadowWaitMs: number;
  prices: PriceTable;
  tokenizer: TokenizerFactory;
  approximateTokenMultiplier: number;
  imageTokens: number;
  onBudgetUnreachable: OnBudgetUnreachable;
  limits: InputLimits;
  tokenCacheBytes: number;
  clock: () => number;
}

/** The defaults of `createCompactor`, in one place (a test checks the option docs against them). */
export const COMPACTOR_DEFAULTS = {
  reserveOutputTokens: 4096,
  strategy: DEFAULT_PRESET,
  tokenizer: 'gpt-tokenizer' as TokenizerBackend,
  approximateTokenMultiplier: 1.1,
  imageTokens: DEFAULT_IMAGE_TOKENS,
  onBudgetUnreachable: 'error' as OnBudgetUnreachable,
  tokenCacheBytes: 32 * 1024 * 1024,
  omitCacheHints: false,
  mode: 'enforce' as CompactionMode,
  shadowWaitMs: 50,
};

function positiveInteger(option: string, value: unknown, minimum = 1): void {
  if (!Number.isInteger(value) || (value as number) < minimum) invalidOption(option, `an integer >= ${minimum}`, value);
}

/** Every option `createCompactor` takes: any other key is a typo, and an error. */
export const COMPACTOR_OPTION_NAMES: readonly (keyof CompactorOptions)[] = [
  'maxInputTokens',
  'reserveOutputTokens',
  'models',
  'defaultModel',
  'strategy',
  'presetOptions',
  'embedder',
  'tokenizer',
  'approximateTokenMultiplier',
  'imageTokens',
  'onBudgetUnreachable',
  'cache',
  'omitCacheHints',
  'mode',
  'shadowWaitMs',
  'prices',
  'runtime',
  'limits',
  'tokenCacheBytes',
  'clock',
];

export const COMPACTOR_OPTIONS = defineOptions<CompactorOptions, typeof COMPACTOR_DEFAULTS>({
  factory: 'createCompactor',
  defaults: COMPACTOR_DEFAULTS,
  rules: {
    ...checkedByFactory<CompactorOptions>(COMPACTOR_OPTION_NAMES),
    maxInputTokens: rules.int(1),
    reserveOutputTokens: rules.int(0),
    approximateTokenMultiplier: rules.number(0.1, 10),
    imageTokens: rules.int(0),
    tokenCacheBytes: rules.int(1024),
    onBudgetUnreachable: rules.oneOf('error', 'pass-through'),
    defaultModel: rules.string,
    omitCacheHints: rules.boolean,
    mode: rules.oneOf('enforce', 'shadow'),
    shadowWaitMs: rules.int(0),
    clock: rules.function,
    limits: rules.object,
  },
  docs: [['src/compose/options.ts', 'CompactorOptions']],
});

export const LIMITS_OPTIONS = defineOptions<Partial<InputLimits>>({
  factory: 'limits',
  defaults: { ...DEFAULT_LIMITS },
  rules: { maxMessages: rules.int(1), maxPartsPerMessage: rules.int(1) },
  docs: [['src/core/validate.ts', 'InputLimits']],
});

export function resolveOptions(options: CompactorOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) invalidOption('options', 'an object', options);
  const merged = COMPACTOR_OPTIONS.parse(options);
  // Scalars were checked by their rules above; what follows needs more than a rule.
  const models = { ...KNOWN_MODELS };
  if (merged.models !== undefined) {
    if (typeof merged.models !== 'object' || merged.models === null) invalidOption('models', 'an object of model entries', merged.models);
    for (const [name, info] of Object.entries(merged.models)) {
      positiveInteger(`models.${name}.contextWindow`, info?.contextWindow);
      if (info.encoding !== undefined && info.encoding !== 'o200k_base' && info.encoding !== 'cl100k_base') {
        invalidOption(`models.${name}.encoding`, '"o200k_base" or "cl100k_base"', info.encoding);
      }
      models[name] = info;
    }
  }
  let tokenizer: TokenizerFactory;
  const backend = merged.tokenizer;
  if (typeof backend === 'function') tokenizer = backend;
  else if (backend === 'js-tiktoken' || backend === 'gpt-tokenizer') {
    // js-tiktoken is an optional dependency (installed unless --omit=optional): say so here, not on the first request.
    if (backend === 'js-tiktoken') requireInstalled('js-tiktoken', "tokenizer: 'js-tiktoken'");
    tokenizer = builtinTokenizer(backend);
  } else invalidOption('tokenizer', '"js-tiktoken", "gpt-tokenizer" or a factory function', backend);
  let strategy: Strategy;
  const chosen = merged.strategy;
  if (typeof chosen === 'string') strategy = createPreset(chosen, merged.presetOptions, 'strategy');
  else if (isStrategy(chosen)) strategy = chosen;
  else invalidOption('strategy', "a preset name or a strategy ({ name, apply }, specificationVersion 'v1' or none)", chosen);
  if (
    merged.embedder !== undefined &&
    (typeof merged.embedder !== 'object' || merged.embedder === null || typeof merged.embedder.embed !== 'function' || typeof merged.embedder.id !== 'string')
  ) {
    invalidOption('embedder', 'an Embedder ({ id, dimensions, embed })', merged.embedder);
  }
  const cache = merged.cache;
  if (cache !== undefined && (typeof cache !== 'object' || cache === null || typeof cache.lookup !== 'function' || typeof cache.commit !== 'function')) {
    invalidOption('cache', 'a ResponseCache (createResponseCache())', cache);
  }
  const runtime = merged.runtime ?? defaultRuntime();
  if (typeof runtime !== 'object' || runtime === null || typeof runtime.defaultEmbedder !== 'function')
    invalidOption('runtime', 'a Runtime (createRuntime())', runtime);
  checkPrices(merged.prices);
  const prices = { ...PRICES, ...merged.prices };
  const limits = LIMITS_OPTIONS.parse(merged.limits, 'limits') as InputLimits;
  const clock = merged.clock ?? (() => performance.now());
  if (typeof clock !== 'function') invalidOption('clock', 'a function returning milliseconds', clock);
  return {
    maxInputTokens: merged.maxInputTokens,
    reserveOutputTokens: merged.reserveOutputTokens,
    models,
    defaultModel: merged.defaultModel,
    strategy,
    embedder: merged.embedder,
    cache,
    runtime,
    omitCacheHints: merged.omitCacheHints,
    mode: merged.mode,
    shadowWaitMs: merged.shadowWaitMs,
    prices,
    tokenizer,
    approximateTokenMultiplier: merged.approximateTokenMultiplier,
    imageTokens: merged.imageTokens,
    onBudgetUnreachable: merged.onBudgetUnreachable,
    limits,
    tokenCacheBytes: merged.tokenCacheBytes,
    clock,
  };
}
