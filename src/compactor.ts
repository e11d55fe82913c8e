import { LRUCache } from 'lru-cache';
import { CompactorError, invalidOption, throwIfAborted } from './errors.js';
import { fromAnthropic, isAnthropicRequest, type AnthropicConversion, type AnthropicRequest } from './formats/anthropic.js';
import { enforce, type OnBudgetUnreachable } from './guard.js';
import { createPreset, DEFAULT_PRESET, type PresetOptions } from './presets.js';
import { runStrategy, type FailureRecord, type Strategy, type StrategyContext, type StrategyStats } from './strategy.js';
import { REPLY_PRIMING_TOKENS, TokenCounter } from './tokens/counter.js';
import { DEFAULT_IMAGE_TOKENS } from './tokens/images.js';
import { KNOWN_MODELS, lookupModel, type ModelInfo } from './tokens/models.js';
import { builtinTokenizer, type EncodingName, type TokenizerBackend, type TokenizerFactory } from './tokens/tokenizer.js';
import type { Embedder } from './embedders/types.js';
import type { CachedResponse, CacheLookup, ResponseCache } from './cache/response-cache.js';
import { semanticCache } from '../strategies/semantic-cache/index.js';
import type { ChatRequest, Messages } from './types.js';
import { partition, type Partition } from './units.js';
import { DEFAULT_LIMITS, validateRequest, type InputLimits } from './validate.js';

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
   * @default 'truncate'
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
   * history about 5× faster than `js-tiktoken` (bench/RESULTS.md); `js-tiktoken` stays supported.
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
   * What to do when the protected messages alone exceed the budget: throw `budget.unreachable`
   * (status 413), or send the request on uncompacted.
   * @default 'error'
   */
  onBudgetUnreachable?: OnBudgetUnreachable;
  /**
   * Response cache checked before compaction: a hit answers the request without the model
   * (`createResponseCache(…)`). Without one, nothing is cached.
   * @default undefined
   */
  cache?: ResponseCache;
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

export interface CompactOptions {
  signal?: AbortSignal;
  /** Tenant id, passed to strategies and caches (never leaves the process). */
  tenant?: string;
  /** Route name or path, passed to strategies and used by route tables. */
  route?: string;
  /**
   * Request format. `auto` detects Anthropic bodies (top-level `system`, or Anthropic-only blocks).
   * @default 'auto'
   */
  format?: 'auto' | 'openai' | 'anthropic';
  /**
   * Count and budget as if for this model; the request's own `model` field is left as it is.
   * @default the request's `model`, else the `defaultModel` option
   */
  model?: string;
  /**
   * Skip the response cache for this request (adapters set it from `Cache-Control: no-cache` or
   * `x-compactor-cache: bypass`). The response is not stored either.
   * @default false
   */
  bypassCache?: boolean;
}

export interface CompactionStats {
  model: string | undefined;
  encoding: string;
  format: 'openai' | 'anthropic';
  /** Token budget applied, or null when none could be resolved (unknown model, no maxInputTokens). */
  budget: number | null;
  tokensBefore: number;
  tokensAfter: number;
  messagesBefore: number;
  messagesAfter: number;
  /** Milliseconds the whole compaction took. */
  ms: number;
  strategies: StrategyStats[];
  guard: { repaired: number; droppedForBudget: number; violation?: string };
  /** All failures recovered from, across strategies. */
  failures: FailureRecord[];
  /** Why the request went through uncompacted, when it did. */
  passThrough?: 'within-budget' | 'no-budget' | 'budget-unreachable' | 'cache-hit';
  /** The response cache's verdict, when a cache is configured. */
  cache?: { status: 'hit' | 'miss' | 'bypass'; layer?: 'exact' | 'semantic'; reason?: string; score?: number };
}

/** What the adapters do with the cache: answer from it, or store the upstream's response. */
export interface CacheOutcome {
  status: 'hit' | 'miss' | 'bypass';
  /** The cached response, on a hit. */
  response?: CachedResponse;
  /** Store the upstream's completed response (only on a miss; resolves false when not stored). */
  commit(response: CachedResponse): Promise<boolean>;
}

export interface CompactionResult<T = ChatRequest> {
  /** The compacted copy, in the shape it came in. */
  request: T;
  stats: CompactionStats;
  /** Present when the compactor has a cache. */
  cache?: CacheOutcome;
}

export interface Compactor {
  compact<T extends object = ChatRequest>(request: T, options?: CompactOptions): Promise<CompactionResult<T>>;
  /** Count a request's prompt tokens as the compactor does (canonical or Anthropic shape). */
  countTokens(request: object): Promise<number>;
  /** The memoized token counter the compactor uses for a model (for benches and custom strategies). */
  tokenCounter(model?: string): Promise<TokenCounter>;
  readonly options: Readonly<ResolvedOptions>;
}

interface ResolvedOptions {
  maxInputTokens: number | undefined;
  reserveOutputTokens: number;
  models: Record<string, ModelInfo>;
  defaultModel: string | undefined;
  strategy: Strategy;
  embedder: Embedder | undefined;
  cache: ResponseCache | undefined;
  tokenizer: TokenizerFactory;
  approximateTokenMultiplier: number;
  imageTokens: number;
  onBudgetUnreachable: OnBudgetUnreachable;
  limits: InputLimits;
  tokenCacheBytes: number;
  clock: () => number;
}

const DEFAULTS = {
  reserveOutputTokens: 4096,
  approximateTokenMultiplier: 1.1,
  imageTokens: DEFAULT_IMAGE_TOKENS,
  onBudgetUnreachable: 'error' as OnBudgetUnreachable,
  tokenCacheBytes: 32 * 1024 * 1024,
};

function positiveInteger(option: string, value: unknown, minimum = 1): void {
  if (!Number.isInteger(value) || (value as number) < minimum) invalidOption(option, `an integer >= ${minimum}`, value);
}

/** Validate options once; per-request code never re-parses them. */
export function resolveOptions(options: CompactorOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) invalidOption('options', 'an object', options);
  const merged = { ...DEFAULTS, ...options };
  if (merged.maxInputTokens !== undefined) positiveInteger('maxInputTokens', merged.maxInputTokens);
  positiveInteger('reserveOutputTokens', merged.reserveOutputTokens, 0);
  if (typeof merged.approximateTokenMultiplier !== 'number' || !(merged.approximateTokenMultiplier >= 0.1 && merged.approximateTokenMultiplier <= 10)) {
    invalidOption('approximateTokenMultiplier', 'a number from 0.1 to 10', merged.approximateTokenMultiplier);
  }
  positiveInteger('imageTokens', merged.imageTokens, 0);
  positiveInteger('tokenCacheBytes', merged.tokenCacheBytes, 1024);
  if (merged.onBudgetUnreachable !== 'error' && merged.onBudgetUnreachable !== 'pass-through') {
    invalidOption('onBudgetUnreachable', '"error" or "pass-through"', merged.onBudgetUnreachable);
  }
  if (merged.defaultModel !== undefined && typeof merged.defaultModel !== 'string') invalidOption('defaultModel', 'a string', merged.defaultModel);
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
  const backend = merged.tokenizer ?? 'gpt-tokenizer';
  if (typeof backend === 'function') tokenizer = backend;
  else if (backend === 'js-tiktoken' || backend === 'gpt-tokenizer') tokenizer = builtinTokenizer(backend);
  else invalidOption('tokenizer', '"js-tiktoken", "gpt-tokenizer" or a factory function', backend);
  let strategy: Strategy;
  const chosen = merged.strategy ?? DEFAULT_PRESET;
  if (typeof chosen === 'string') strategy = createPreset(chosen, merged.presetOptions, 'strategy');
  else if (typeof chosen === 'object' && chosen !== null && typeof chosen.apply === 'function' && typeof chosen.name === 'string') strategy = chosen;
  else invalidOption('strategy', 'a preset name or a strategy ({ name, apply })', chosen);
  if (merged.embedder !== undefined && (typeof merged.embedder !== 'object' || merged.embedder === null || typeof merged.embedder.embed !== 'function' || typeof merged.embedder.id !== 'string')) {
    invalidOption('embedder', 'an Embedder ({ id, dimensions, embed })', merged.embedder);
  }
  const cache = merged.cache;
  if (cache !== undefined && (typeof cache !== 'object' || cache === null || typeof cache.lookup !== 'function' || typeof cache.commit !== 'function')) {
    invalidOption('cache', 'a ResponseCache (createResponseCache())', cache);
  }
  const limits = { ...DEFAULT_LIMITS, ...merged.limits };
  positiveInteger('limits.maxMessages', limits.maxMessages);
  positiveInteger('limits.maxPartsPerMessage', limits.maxPartsPerMessage);
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
    tokenizer,
    approximateTokenMultiplier: merged.approximateTokenMultiplier,
    imageTokens: merged.imageTokens,
    onBudgetUnreachable: merged.onBudgetUnreachable,
    limits,
    tokenCacheBytes: merged.tokenCacheBytes,
    clock,
  };
}

/** Budget for a request: `maxInputTokens`, the model window minus the reply reserve, or the smaller. */
export function resolveBudget(
  options: Pick<ResolvedOptions, 'maxInputTokens' | 'reserveOutputTokens'>,
  info: ModelInfo | undefined,
  request: Pick<ChatRequest, 'max_tokens' | 'max_completion_tokens'>,
): number | null {
  let windowBudget: number | null = null;
  if (info) {
    const requested = request.max_completion_tokens ?? request.max_tokens;
    const reserve = typeof requested === 'number' && requested >= 0 ? requested : options.reserveOutputTokens;
    windowBudget = Math.max(0, info.contextWindow - reserve);
  }
  if (options.maxInputTokens === undefined) return windowBudget;
  return windowBudget === null ? options.maxInputTokens : Math.min(windowBudget, options.maxInputTokens);
}

/**
 * Create a compactor. Options are validated here, once.
 *
 * @example
 * const compactor = createCompactor({ maxInputTokens: 4000 })
 * const { request, stats } = await compactor.compact(body)
 */
export function createCompactor(options: CompactorOptions = {}): Compactor {
  const settings = resolveOptions(options);
  const cacheStep = settings.cache ? semanticCache(settings.cache) : undefined;
  // Bounded by bytes, not entries: lru-cache preallocates when `max` is set, which would make
  // every compactor (one per route) pay for the largest cache up front.
  const memo = new LRUCache<string, number>({ maxSize: settings.tokenCacheBytes, sizeCalculation: (_value, key) => 2 * key.length + 64 });
  const counters = new Map<string, Promise<TokenCounter>>();

  function counterFor(info: ModelInfo | undefined): Promise<TokenCounter> {
    const encoding: EncodingName = info?.encoding ?? 'o200k_base';
    const multiplier = info?.encoding ? 1 : (info?.tokenMultiplier ?? settings.approximateTokenMultiplier);
    const key = `${encoding}|${multiplier}`;
    let counter = counters.get(key);
    if (counter === undefined) {
      counter = Promise.resolve(settings.tokenizer(encoding)).then(
        (tokenizer) => new TokenCounter({ tokenizer, multiplier, imageTokens: settings.imageTokens, memo }),
      );
      counter.catch(() => counters.delete(key));
      counters.set(key, counter);
    }
    return counter;
  }

  function infoFor(model: string | undefined): ModelInfo | undefined {
    return lookupModel(model ?? settings.defaultModel, settings.models);
  }

  function toCanonical(request: object, format: CompactOptions['format']): { canonical: ChatRequest; conversion?: AnthropicConversion } {
    const anthropic = format === 'anthropic' || (format !== 'openai' && isAnthropicRequest(request));
    if (!anthropic) {
      validateRequest(request, settings.limits);
      return { canonical: request };
    }
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      throw new CompactorError('input.invalid', 'body: must be a JSON object', { pointer: 'body' });
    }
    const conversion = fromAnthropic(request as AnthropicRequest);
    try {
      validateRequest(conversion.canonical, settings.limits);
    } catch (error) {
      if (CompactorError.isInstance(error) && error.pointer) {
        const pointer = conversion.pointer(error.pointer);
        throw new CompactorError(error.code, error.message.replace(error.pointer, pointer), { pointer, cause: error });
      }
      throw error;
    }
    return { canonical: conversion.canonical, conversion };
  }

  return {
    options: settings,
    tokenCounter(model) {
      return counterFor(infoFor(model));
    },
    async countTokens(request) {
      const { canonical } = toCanonical(request, 'auto');
      const counter = await counterFor(infoFor(canonical.model));
      return counter.request(canonical);
    },
    async compact<T extends object>(request: T, compactOptions: CompactOptions = {}): Promise<CompactionResult<T>> {
      const { signal, tenant, route, format = 'auto' } = compactOptions;
      if (compactOptions.model !== undefined && typeof compactOptions.model !== 'string') {
        throw new CompactorError('options.invalid', 'option "model" must be a string', { pointer: 'model' });
      }
      throwIfAborted(signal);
      const started = settings.clock();
      const { canonical, conversion } = toCanonical(request, format);
      const model = compactOptions.model ?? canonical.model ?? settings.defaultModel;
      const info = infoFor(model);
      const counter = await counterFor(info);
      const input = canonical.messages;
      const fixedTokens = REPLY_PRIMING_TOKENS + counter.tools(canonical);
      const tokensBefore = fixedTokens + counter.messages(input);
      const budget = resolveBudget(settings, info, canonical);
      const stats: CompactionStats = {
        model,
        encoding: counter.encoding,
        format: conversion ? 'anthropic' : 'openai',
        budget,
        tokensBefore,
        tokensAfter: tokensBefore,
        messagesBefore: input.length,
        messagesAfter: input.length,
        ms: 0,
        strategies: [],
        guard: { repaired: 0, droppedForBudget: 0 },
        failures: [],
      };
      let cacheOutcome: CacheOutcome | undefined;
      const finish = (messages: Messages): CompactionResult<T> => {
        stats.ms = settings.clock() - started;
        const restored = conversion ? conversion.restore(messages) : { ...canonical, messages: [...messages] };
        const result: CompactionResult<T> = { request: restored as unknown as T, stats };
        if (cacheOutcome) result.cache = cacheOutcome;
        return result;
      };

      const partitions = new WeakMap<Messages, Partition>();
      const tokensOf = (message: (typeof input)[number]) => counter.message(message);
      const context: StrategyContext = {
        counter,
        budget: budget ?? Number.POSITIVE_INFINITY,
        fixedTokens,
        model,
        request: canonical,
        signal,
        clock: settings.clock,
        route,
        tenant,
        embedder: settings.embedder,
        format: conversion ? 'anthropic' : 'openai',
        bypassCache: compactOptions.bypassCache === true,
        partition(messages) {
          let cached = partitions.get(messages);
          if (cached === undefined) {
            cached = partition(messages, tokensOf);
            partitions.set(messages, cached);
          }
          return cached;
        },
      };

      if (cacheStep && settings.cache) {
        const looked = await runStrategy(cacheStep, input, context);
        stats.strategies.push(looked.stats);
        stats.failures.push(...looked.stats.failures);
        cacheOutcome = outcomeOf(settings.cache, looked.cache, stats);
        if (cacheOutcome.status === 'hit') {
          stats.passThrough = 'cache-hit';
          return finish(input);
        }
      }
      if (budget === null) {
        stats.passThrough = 'no-budget';
        return finish(input);
      }
      if (tokensBefore <= budget) {
        stats.passThrough = 'within-budget';
        return finish(input);
      }

      const ran = await runStrategy(settings.strategy, input, context);
      const steps = ran.stats.steps ? [...ran.stats.steps] : [ran.stats];
      stats.strategies.push(...steps);
      const collect = (list: readonly StrategyStats[]): void => {
        for (const step of list) {
          stats.failures.push(...step.failures);
          if (step.steps) collect(step.steps);
        }
      };
      collect(steps);
      if (ran.stats.steps) stats.failures.push(...ran.stats.failures);

      throwIfAborted(signal);
      const guarded = enforce({
        input,
        partition: context.partition(input),
        output: ran.messages,
        budget,
        fixedTokens,
        tokensOf,
        onBudgetUnreachable: settings.onBudgetUnreachable,
      });
      stats.guard = { repaired: guarded.repaired, droppedForBudget: guarded.droppedForBudget };
      if (guarded.violation) stats.guard.violation = guarded.violation;
      if (guarded.passThrough) stats.passThrough = 'budget-unreachable';
      stats.tokensAfter = guarded.tokens;
      stats.messagesAfter = guarded.messages.length;
      return finish(guarded.messages);
    },
  };
}

const notStored = async (): Promise<boolean> => false;

function outcomeOf(cache: ResponseCache, lookup: CacheLookup | undefined, stats: CompactionStats): CacheOutcome {
  if (!lookup) {
    // The lookup strategy failed (and was counted); the request goes on uncached.
    stats.cache = { status: 'bypass', reason: 'failed' };
    return { status: 'bypass', commit: notStored };
  }
  if (lookup.status === 'hit') {
    stats.cache = { status: 'hit', layer: lookup.layer };
    if (lookup.score !== undefined) stats.cache.score = lookup.score;
    return { status: 'hit', response: lookup.response, commit: notStored };
  }
  if (lookup.status === 'bypass') {
    stats.cache = { status: 'bypass', reason: lookup.reason };
    return { status: 'bypass', commit: notStored };
  }
  stats.cache = { status: 'miss' };
  const ticket = lookup.ticket;
  let committed = false;
  return {
    status: 'miss',
    commit(response) {
      // One response per request: a second commit (a retry loop, say) is ignored.
      if (committed) return notStored();
      committed = true;
      return cache.commit(ticket, response);
    },
  };
}
