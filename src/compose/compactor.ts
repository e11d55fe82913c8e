import type { ResponseCache } from '../cache/response-cache.js';
import { CompactorError, rethrowIfAborted, throwIfAborted } from '../core/errors.js';
import { enforce } from '../core/guard.js';
import { type CompactionStats, failuresOf, WARMING } from '../core/stats.js';
import { createStrategyContext, runStrategy } from '../core/strategy.js';
import type { ChatMessage, ChatRequest, Messages } from '../core/types.js';
import { resolveFormat } from '../formats/registry.js';
import { priceOf } from '../prices.js';
import { REPLY_PRIMING_TOKENS, type TokenCounter } from '../tokens/counter.js';
import { lookupModel, type ModelInfo } from '../tokens/models.js';
import { resolveBudget, resolveWindow } from './budget.js';
import { cacheAccessOf, committer, lookUp } from './cache-stage.js';
import { tokenCounters } from './counters.js';
import { breakpointsOf, cacheKey, reaching } from './hints.js';
import { modeOf, toShadow } from './shadow.js';
import { compactionAttributes } from './spans.js';
import { inSpan } from '../core/telemetry.js';
import { type CompactorOptions, type ResolvedOptions, resolveOptions } from './options.js';

export type { CacheAccess } from '../core/stats.js';

import type { CompactOptions, Compacted, CompactResult } from './types.js';

export type { Cached, CompactOptions, Compacted, CompactResult } from './types.js';

/**
 * A compactor. `HasCache` is false when it was built without a response cache, so `compact()` can
 * only return `compacted` and needs no narrowing.
 */
export interface Compactor<HasCache extends boolean = boolean> {
  compact<T extends object = ChatRequest>(request: T, options?: CompactOptions): Promise<HasCache extends false ? Compacted<T> : CompactResult<T>>;
  /** Count a request's prompt tokens as the compactor does (canonical or Anthropic shape). */
  countTokens(request: object): Promise<number>;
  /** The memoized token counter the compactor uses for a model (for benches and custom strategies). */
  tokenCounter(model?: string): Promise<TokenCounter>;
  /**
   * Stop the background work it started (history embedding, summary jobs) and unload the encoder:
   * it closes the runtime it runs on (`options.runtime`, the process-wide default unless you gave
   * your own), which stays usable. Call it when a script is done, so the process exits at once.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
  readonly options: Readonly<ResolvedOptions>;
}

/** Whether options configure a response cache, as far as their type tells. */
export type HasCache<O> = 'cache' extends keyof O ? ([O['cache']] extends [undefined] ? false : [O['cache']] extends [ResponseCache] ? true : boolean) : false;

/**
 * Create a compactor. Options are validated here, once, and errors name the option.
 *
 * @example
 * const compactor = createCompactor({ maxInputTokens: 4000 })
 * const { request, stats } = await compactor.compact(body)
 */
export function createCompactor<O extends CompactorOptions>(options: O = {} as O): Compactor<HasCache<O>> {
  const settings = resolveOptions(options);
  const counterFor = tokenCounters(settings);
  const infoFor = (model: string | undefined): ModelInfo | undefined => lookupModel(model ?? settings.defaultModel, settings.models);

  async function compactRequest<T extends object>(request: T, compactOptions: CompactOptions): Promise<CompactResult<T>> {
    const { signal, format: formatOption = 'auto' } = compactOptions;
    for (const name of ['model', 'tenant', 'route'] as const) {
      const value = compactOptions[name];
      if (value !== undefined && typeof value !== 'string') throw new CompactorError('options.invalid', `option "${name}" must be a string`, { pointer: name });
    }
    cacheAccessOf(compactOptions);
    if (compactOptions.skipCompaction !== undefined && typeof compactOptions.skipCompaction !== 'boolean')
      throw new CompactorError('options.invalid', 'option "skipCompaction" must be a boolean', { pointer: 'skipCompaction' });
    const shadow = modeOf(compactOptions, settings.mode) === 'shadow';
    throwIfAborted(signal);
    const started = settings.clock();
    const format = resolveFormat(formatOption, request);
    const conversion = format.toCanonical(request, settings.limits);
    const canonical = conversion.canonical;
    const model = compactOptions.model ?? canonical.model ?? settings.defaultModel;
    const info = infoFor(model);
    const counter = await counterFor(info);
    const input = canonical.messages;
    // Counted in slices with yields first: a multi-megabyte history must not hold the event loop.
    await counter.prewarm(input, signal);
    const fixedTokens = REPLY_PRIMING_TOKENS + counter.tools(canonical);
    const tokensBefore = fixedTokens + counter.messages(input);
    const budget = resolveBudget(settings, info, canonical);
    const stats: CompactionStats = {
      model,
      encoding: counter.encoding,
      format: format.name,
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

    // A stateful request (the provider holds the history): nothing to compact, no history to key an answer by.
    if (conversion.passThrough === 'stateful') {
      stats.passThrough = 'stateful';
      if (settings.cache) stats.cache = { status: 'bypass', reason: 'stateful', ms: 0 };
      stats.ms = settings.clock() - started;
      return { kind: 'compacted', request, stats };
    }

    let commit: Compacted['commit'];
    let release: Compacted['release'];
    if (settings.cache) {
      const lookup = await lookUp(settings, canonical, format.name, compactOptions, stats, shadow);
      // Shadow: the answer that would have been served is reported, and the request goes as it came.
      if (lookup?.status === 'hit' && shadow) {
        toShadow(stats, settings.prices, true);
        stats.ms = settings.clock() - started;
        return { kind: 'compacted', request, stats };
      }
      if (lookup?.status === 'hit') {
        stats.tokensAfter = 0;
        stats.messagesAfter = 0;
        stats.ms = settings.clock() - started;
        const reply = format.replay(lookup.response, canonical.stream === true);
        return { kind: 'cached', response: lookup.response, replay: reply, reply, stats };
      }
      if (lookup?.status === 'miss') {
        ({ commit, release } = committer(settings.cache, lookup.ticket));
      }
    }
    // Asked to go as it came: the cache stage above still ran, compaction does not.
    const asCame = (): Compacted<T> => (commit && release ? { kind: 'compacted', request, stats, commit, release } : { kind: 'compacted', request, stats });
    if (compactOptions.skipCompaction === true) {
      stats.passThrough = 'skipped';
      if (shadow) toShadow(stats, settings.prices, false);
      stats.ms = settings.clock() - started;
      return asCame();
    }
    let compacted: Compacted<T>;
    try {
      compacted = await compactMissed();
    } catch (error) {
      // Shadow: what enforcing would have refused is reported; only an abort stops the request.
      if (shadow) {
        rethrowIfAborted(error, signal);
        toShadow(stats, settings.prices, false, error);
        stats.ms = settings.clock() - started;
        return asCame();
      }
      // Nothing will be committed: identical requests waiting on this one go ahead.
      release?.();
      throw error;
    }
    if (!shadow) return compacted;
    toShadow(stats, settings.prices, false);
    return asCame();

    async function compactMissed(): Promise<Compacted<T>> {
      const finish = (messages: Messages, breakpoints?: readonly ChatMessage[], rewrites?: ReadonlyMap<ChatMessage, ChatMessage>): Compacted<T> => {
        stats.ms = settings.clock() - started;
        const marks = breakpointsOf(messages, breakpoints);
        stats.breakpoints = marks.map((message) => messages.indexOf(message));
        // The key goes only to models the price table knows as OpenAI's: other OpenAI-compatible servers may refuse a field they do not know.
        const price = priceOf(settings.prices, model);
        const openai = price?.cacheRule === 'openai';
        const hints =
          (compactOptions.cacheHints ?? !settings.omitCacheHints) === false
            ? undefined
            : {
                // A breakpoint below the model's shortest cached prefix would cache nothing.
                breakpoints: price ? reaching(messages, marks, fixedTokens, (message) => counter.message(message), price.minCachedTokens ?? 1024) : marks,
                key: openai ? cacheKey(canonical, compactOptions.tenant) : undefined,
                explicit: price?.cacheBreakpoints === true,
              };
        const restored = conversion.restore(messages, hints, rewrites) as T;
        return commit && release ? { kind: 'compacted', request: restored, stats, commit, release } : { kind: 'compacted', request: restored, stats };
      };
      if (budget === null) {
        stats.passThrough = 'no-budget';
        return finish(input);
      }
      const within = tokensBefore <= budget;
      if (within && settings.strategy.withinBudget !== true) {
        stats.passThrough = 'within-budget';
        return finish(input);
      }

      const context = createStrategyContext({
        counter,
        budget,
        fixedTokens,
        model,
        request: canonical,
        signal,
        clock: settings.clock,
        route: compactOptions.route,
        tenant: compactOptions.tenant,
        embedder: settings.embedder,
        runtime: settings.runtime,
        price: priceOf(settings.prices, model),
      });
      const ran = await runStrategy(settings.strategy, input, context);
      const steps = ran.stats.steps ? [...ran.stats.steps] : [ran.stats];
      stats.strategies.push(...steps);
      // A pipeline that threw records its failure on itself, not on a step.
      for (const failure of [...failuresOf(steps), ...(ran.stats.steps ? ran.stats.failures : [])]) {
        if (failure.code !== WARMING) stats.failures.push(failure);
        else if (stats.warming) stats.warming.push(failure.strategy);
        else stats.warming = [failure.strategy];
      }
      if (within && ran.messages === input) {
        stats.passThrough = 'within-budget';
        return finish(input);
      }
      stats.reason = within ? 'cheaper' : 'over-budget';

      throwIfAborted(signal);
      const guarded = enforce({
        input,
        partition: context.partition(input),
        output: ran.messages,
        rewrites: ran.rewrites,
        budget,
        fixedTokens,
        tokensOf: (message) => counter.message(message),
        onBudgetUnreachable: settings.onBudgetUnreachable,
        window: resolveWindow(settings, info, canonical),
      });
      stats.guard = { repaired: guarded.repaired, droppedForBudget: guarded.droppedForBudget };
      if (guarded.violation) stats.guard.violation = guarded.violation;
      if (guarded.cleared > 0) stats.guard.cleared = guarded.cleared;
      if (guarded.cut > 0) stats.guard.cut = guarded.cut;
      if (guarded.droppedFromCore > 0) stats.guard.droppedFromCore = guarded.droppedFromCore;
      if (guarded.passThrough) stats.passThrough = 'budget-unreachable';
      stats.tokensAfter = guarded.tokens;
      stats.messagesAfter = guarded.messages.length;
      return finish(guarded.messages, ran.breakpoints, guarded.rewrites);
    }
  }

  const compactor: Compactor = {
    options: settings,
    close() {
      return settings.runtime.close();
    },
    [Symbol.asyncDispose]() {
      return settings.runtime.close();
    },
    tokenCounter(model) {
      return counterFor(infoFor(model));
    },
    async countTokens(request) {
      const { canonical } = resolveFormat('auto', request).toCanonical(request, settings.limits);
      const counter = await counterFor(infoFor(canonical.model));
      return counter.request(canonical);
    },
    compact<T extends object>(request: T, compactOptions: CompactOptions = {}): Promise<CompactResult<T>> {
      return inSpan(
        'context-compactor.compact',
        undefined,
        () => compactRequest(request, compactOptions),
        (result) => compactionAttributes(result.stats, settings.strategy.name, priceOf(settings.prices, result.stats.model)),
      );
    },
  };
  return compactor as Compactor<HasCache<O>>;
}
