import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { CacheLookup, CacheTicket, ResponseCache } from '../cache/response-cache.js';
import { resolveFormat } from '../formats/registry.js';
import type { CachedResponse, FormatName, Replay } from '../formats/wire-format.js';
import { messageKey, REPLY_PRIMING_TOKENS, TokenCounter } from '../tokens/counter.js';
import { priceOf } from '../prices.js';
import { lookupModel, type ModelInfo } from '../tokens/models.js';
import type { EncodingName } from '../tokens/tokenizer.js';
import { CompactorError, rethrowIfAborted, throwIfAborted } from '../core/errors.js';
import { enforce } from '../core/guard.js';
import { resolveBudget, resolveWindow } from './budget.js';
import { resolveOptions, type CompactorOptions, type ResolvedOptions } from './options.js';
import { failuresOf, WARMING, type CacheStats, type CompactionStats } from '../core/stats.js';
import { createStrategyContext, failureOf, runStrategy } from '../core/strategy.js';
import type { ChatMessage, ChatRequest, Messages } from '../core/types.js';

export interface CompactOptions {
  signal?: AbortSignal;
  /** Tenant id: scopes the response cache and is passed to strategies (it never leaves the process). */
  tenant?: string;
  /** Route name or path: passed to strategies and the cache, and used by route tables. */
  route?: string;
  /**
   * Wire format of the request. `auto` detects Anthropic Messages bodies (a top-level `system`, or
   * Anthropic-only blocks).
   * @default 'auto'
   */
  format?: 'auto' | FormatName;
  /**
   * Count and budget as if for this model; the request's own `model` field is left as it is.
   * @default the request's `model`, else the `defaultModel` option
   */
  model?: string;
  /**
   * Skip the response cache for this request (adapters set it from `Cache-Control: no-cache` or
   * `x-compactor-cache: bypass`). The answer is not stored either.
   * @default false
   */
  bypassCache?: boolean;
  /**
   * Whether this caller may be answered from the response cache. False looks nothing up but still
   * lets its answer be stored (the proxy sets it for a caller whose own key the upstream has not
   * accepted recently, so a revoked key gets no cached answers).
   * @default true
   */
  serveFromCache?: boolean;
  /**
   * Add provider cache hints to this request (OpenAI's `prompt_cache_key`, Anthropic's
   * `cache_control` breakpoints): the proxy turns them off for upstreams that may refuse them.
   * @default true, unless the compactor's `omitCacheHints`
   */
  cacheHints?: boolean;
}

/** The request, compacted (or passed through) for the model. */
export interface Compacted<T = ChatRequest> {
  readonly kind: 'compacted';
  /** A compacted copy, in the shape the request came in; the input is never mutated. */
  readonly request: T;
  readonly stats: CompactionStats;
  /**
   * Present when the cache missed: store the model's completed answer for the next such request.
   * Resolves false when the answer was not stored (incomplete, an error, tool calls, too large) or
   * was already committed once.
   */
  readonly commit?: (response: CachedResponse) => Promise<boolean>;
  /**
   * Present with `commit`: call it when the request ends without an answer to commit (the model
   * failed), so identical requests waiting on this one go ahead at once. `commit` releases them
   * too; they give up waiting after the cache's `coalesceMs` anyway.
   */
  readonly release?: () => void;
}

/** The request, answered by the response cache: nothing needs to reach the model. */
export interface Cached {
  readonly kind: 'cached';
  /** The stored answer, in the form it was stored (JSON body or stream events). */
  readonly response: CachedResponse;
  /** The stored answer in the form this request asked for (`stream: true` gets events). */
  readonly reply: Replay;
  readonly stats: CompactionStats;
}

/** What `compact()` did: answered from the cache, or compacted for the model. */
export type CompactResult<T = ChatRequest> = Compacted<T> | Cached;

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

/**
 * Where the provider's cache breakpoints go: where the strategy says its stable part ends, else
 * at the end of the prompt, as clients mark it: the next request of the conversation repeats it
 * all before its new turn.
 */
function breakpointsOf(messages: Messages, chosen: readonly ChatMessage[] | undefined): ChatMessage[] {
  const present = new Set(messages);
  const marks = (chosen ?? []).filter((message) => present.has(message));
  if (marks.length > 0) return marks;
  return messages.length > 0 ? [messages[messages.length - 1]!] : [];
}

/** A key stable across a conversation's requests: its tenant, system prompt and first user message. */
function cacheKey(request: ChatRequest, tenant: string | undefined): string {
  const hash = createHash('sha256').update(tenant ?? '');
  for (const message of request.messages) {
    if (message.role === 'system' || message.role === 'developer') hash.update(`\u0000s${messageKey(message)}`);
    else if (message.role === 'user') {
      hash.update(`\u0000u${messageKey(message)}`);
      break;
    }
  }
  return `cc-${hash.digest('base64url').slice(0, 22)}`;
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

  const infoFor = (model: string | undefined): ModelInfo | undefined => lookupModel(model ?? settings.defaultModel, settings.models);

  /** The cache stage: a lookup that can fail only by abort (anything else is counted, and the request goes on uncached). */
  async function lookUp(canonical: ChatRequest, format: FormatName, compactOptions: CompactOptions, stats: CompactionStats): Promise<CacheLookup | undefined> {
    const cache = settings.cache!;
    const started = settings.clock();
    let lookup: CacheLookup | undefined;
    try {
      lookup = await cache.lookup(canonical, {
        tenant: compactOptions.tenant,
        route: compactOptions.route,
        format,
        bypass: compactOptions.bypassCache === true,
        writeOnly: compactOptions.serveFromCache === false,
        signal: compactOptions.signal,
      });
    } catch (error) {
      rethrowIfAborted(error, compactOptions.signal);
      stats.failures.push(failureOf('cache', error));
    }
    const verdict: CacheStats = { status: lookup?.status ?? 'bypass', ms: settings.clock() - started };
    if (!lookup) verdict.reason = 'failed';
    else if (lookup.status === 'hit') {
      verdict.layer = lookup.layer;
      if (lookup.score !== undefined) verdict.score = Number(lookup.score.toFixed(4));
    } else if (lookup.status === 'bypass') verdict.reason = lookup.reason;
    else if (lookup.writeOnly) verdict.reason = 'write-only';
    else if (lookup.coalesced) verdict.reason = 'coalesced';
    if (lookup && lookup.status !== 'hit' && lookup.failure) stats.failures.push({ strategy: 'cache', code: 'upstream.failed', message: lookup.failure });
    stats.cache = verdict;
    return lookup;
  }

  /** A miss's commit and release: whichever comes first settles it, the other is then ignored. */
  function committer(ticket: CacheTicket): { commit: (response: CachedResponse) => Promise<boolean>; release: () => void } {
    let settled = false;
    return {
      async commit(response) {
        // One answer per request: a second commit (a retry loop, say) is ignored.
        if (settled) return false;
        settled = true;
        return settings.cache!.commit(ticket, response);
      },
      release() {
        if (settled) return;
        settled = true;
        settings.cache!.release(ticket);
      },
    };
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
    async compact<T extends object>(request: T, compactOptions: CompactOptions = {}): Promise<CompactResult<T>> {
      const { signal, format: formatOption = 'auto' } = compactOptions;
      for (const name of ['model', 'tenant', 'route'] as const) {
        const value = compactOptions[name];
        if (value !== undefined && typeof value !== 'string')
          throw new CompactorError('options.invalid', `option "${name}" must be a string`, { pointer: name });
      }
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

      let commit: Compacted['commit'];
      let release: Compacted['release'];
      if (settings.cache) {
        const lookup = await lookUp(canonical, format.name, compactOptions, stats);
        if (lookup?.status === 'hit') {
          stats.tokensAfter = 0;
          stats.messagesAfter = 0;
          stats.ms = settings.clock() - started;
          const reply = format.replay(lookup.response, canonical.stream === true);
          return { kind: 'cached', response: lookup.response, reply, stats };
        }
        if (lookup?.status === 'miss') {
          ({ commit, release } = committer(lookup.ticket));
        }
      }
      try {
        return await compactMissed();
      } catch (error) {
        // Nothing will be committed: identical requests waiting on this one go ahead.
        release?.();
        throw error;
      }

      async function compactMissed(): Promise<Compacted<T>> {
        const finish = (messages: Messages, breakpoints?: readonly ChatMessage[], rewrites?: ReadonlyMap<ChatMessage, ChatMessage>): Compacted<T> => {
          stats.ms = settings.clock() - started;
          const marks = breakpointsOf(messages, breakpoints);
          stats.breakpoints = marks.map((message) => messages.indexOf(message));
          // The key goes only to models the price table knows as OpenAI's: other OpenAI-compatible servers may refuse a field they do not know.
          const openai = priceOf(settings.prices, model)?.cacheRule === 'openai';
          const hints =
            (compactOptions.cacheHints ?? !settings.omitCacheHints) === false
              ? undefined
              : { breakpoints: marks, key: openai ? cacheKey(canonical, compactOptions.tenant) : undefined };
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
    },
  };
  return compactor as Compactor<HasCache<O>>;
}
