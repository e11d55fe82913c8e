import { withDeadline } from '../core/deadline.js';
import { invalidOption, isAbortError } from '../core/errors.js';
import type { BypassReason } from '../core/stats.js';
import { FORMATS } from '../formats/registry.js';
import { defaultRuntime } from '../runtime.js';
import { memoryStore } from '../stores/memory.js';
import { createCoalescer } from './coalesce.js';
import { createEntries } from './entries.js';
import { accessOf, createKeyer } from './keys.js';
import { type ResponseCacheOptions, resolveCacheOptions } from './options.js';
import type { CacheLookup, ResponseCacheStats, CacheTicket, ResponseCache } from './types.js';

export { conflict } from './conflict.js';
export { normalQuestion } from './keys.js';
export {
  RESPONSE_CACHE_DEFAULTS,
  RESPONSE_CACHE_OPTION_NAMES,
  RESPONSE_CACHE_OPTIONS,
  type ResponseCacheOptions,
  type RouteCacheOptions,
} from './options.js';
export type * from './types.js';

/**
 * A response cache with an exact layer and a context-aware semantic layer, scoped so that no
 * lookup crosses tenant, model, system prompt, tools, route or answer-changing parameters.
 * Options in ./options.ts, keys in ./keys.ts, the store's layout in ./entries.ts, coalescing in
 * ./coalesce.ts and the conflict guard in ./conflict.ts; this file composes them.
 *
 * @example
 * const cache = createResponseCache({ store: redisStore({ url }) })
 * const compactor = createCompactor({ maxInputTokens: 8000, cache })
 */
export function createResponseCache(options: ResponseCacheOptions = {}): ResponseCache {
  const resolved = resolveCacheOptions(options);
  const { settings, verifier, threshold, routes } = resolved;
  const store = settings.store ?? memoryStore();
  const embedder = settings.embedder === undefined ? defaultRuntime().defaultEmbedder() : settings.embedder;
  const embeddings = settings.embeddings ?? defaultRuntime().embeddings;
  const stats: ResponseCacheStats = {
    hits: { exact: 0, semantic: 0 },
    misses: 0,
    coalesced: 0,
    shadowHits: 0,
    guarded: 0,
    backfilled: 0,
    bypass: {},
    stored: 0,
    skipped: {},
    failures: {},
  };
  const fail = (component: string): void => {
    stats.failures[component] = (stats.failures[component] ?? 0) + 1;
  };
  const bypass = (reason: BypassReason, failure?: string): CacheLookup => {
    stats.bypass[reason] = (stats.bypass[reason] ?? 0) + 1;
    return failure ? { status: 'bypass', reason, failure } : { status: 'bypass', reason };
  };
  const pending = new Set<Promise<boolean>>();
  function track(work: Promise<boolean>): Promise<boolean> {
    pending.add(work);
    void work.finally(() => pending.delete(work)).catch(() => undefined);
    return work;
  }
  const keyer = createKeyer(resolved, embedder);
  const entries = createEntries({ options: resolved, store, embedder, embeddings, stats, fail, track });
  const coalescer = createCoalescer(settings.coalesceMs);
  const thresholdFor = (route: string | undefined): number => (route !== undefined ? routes.get(route)?.threshold : undefined) ?? threshold;

  return {
    store,
    embedder,
    embeddings,
    verifier,
    ticket: (request, lookup = {}) => keyer.ticketOf(request, lookup),
    stats: () => structuredClone(stats),
    async probe(request, lookup = {}) {
      const made = keyer.ticketOf(request, lookup);
      if (typeof made === 'string') return undefined;
      const ticket = entries.withGeneration(made, await entries.generationOf(lookup.tenant));
      const exact = await entries.exactEntry(ticket.exactKey);
      if (exact && FORMATS[exact.response.format].replayable(exact.response, ticket.streamed))
        return { layer: 'exact', score: 1, cosine: 1, question: exact.question, response: exact.response };
      if (!ticket.namespace || !ticket.question || !embedder) return undefined;
      const [vector] = (await embeddings.embed(embedder, [ticket.question], { signal: lookup.signal })) as [Float32Array];
      const best = await entries.nearest(ticket.namespace, ticket.question, vector, ticket.streamed);
      return best ? { layer: 'semantic', ...best } : undefined;
    },
    async lookup(request, lookup = {}) {
      await keyer.prepareDigests(request.messages);
      const made = keyer.ticketOf(request, lookup);
      if (typeof made === 'string') return bypass(made);
      let ticket: CacheTicket;
      try {
        ticket = entries.withGeneration(made, await entries.generationOf(lookup.tenant));
      } catch (error) {
        if (isAbortError(error)) throw error;
        fail('store');
        return bypass('store-failed', (error as Error).message);
      }
      // A caller that may not be served from the cache yet: its answer may still be stored.
      if (accessOf(lookup) === 'write-only') {
        stats.misses++;
        return { status: 'miss', ticket, writeOnly: true };
      }
      // Exact layer (again after waiting for an identical request in flight).
      const shadow = lookup.shadow === true;
      if (shadow) ticket = { ...ticket, shadow: true };
      const hit = (found: Extract<CacheLookup, { status: 'hit' }>): CacheLookup => {
        if (shadow) stats.shadowHits++;
        else stats.hits[found.layer]++;
        return found;
      };
      let coalesced = false;
      for (;;) {
        try {
          const exact = await entries.exactEntry(ticket.exactKey);
          // An entry that cannot be replayed in the requested form is a miss; the answer replaces it.
          if (exact && FORMATS[exact.response.format].replayable(exact.response, ticket.streamed))
            return hit({ status: 'hit', layer: 'exact', response: exact.response });
        } catch (error) {
          if (isAbortError(error)) throw error;
          fail('store');
          return bypass('store-failed', (error as Error).message);
        }
        // The first miss of a key claims it at once (no await in between), so identical requests
        // arriving meanwhile wait for its answer instead of going upstream too.
        // A shadow lookup neither waits nor claims: its request goes upstream anyway.
        if (shadow) break;
        if (coalesced || !coalescer.inFlight(ticket.exactKey)) {
          coalescer.claim(ticket.exactKey);
          break;
        }
        await coalescer.waitFor(ticket.exactKey, lookup.signal);
        coalesced = true;
        stats.coalesced++;
      }
      const miss = (extra: { failure?: string } = {}): CacheLookup => {
        stats.misses++;
        return coalesced ? { status: 'miss', ticket, ...extra, coalesced } : { status: 'miss', ticket, ...extra };
      };
      if (!ticket.namespace || !ticket.question || !embedder) return miss();
      // Semantic layer.
      let vector: Float32Array;
      try {
        [vector] = (await withDeadline(
          embeddings.embed(embedder, [ticket.question], { signal: lookup.signal }),
          settings.embedTimeoutMs,
          'cache embedding',
          lookup.signal,
        )) as [Float32Array];
      } catch (error) {
        if (isAbortError(error)) {
          if (!shadow) coalescer.release(ticket.exactKey);
          throw error;
        }
        fail('embedder');
        return miss({ failure: (error as Error).message });
      }
      ticket = { ...ticket, vector };
      try {
        const best = await entries.nearest(ticket.namespace!, ticket.question!, vector, ticket.streamed);
        if (best && best.score >= thresholdFor(lookup.route)) {
          if (!shadow) coalescer.release(ticket.exactKey);
          return hit({ status: 'hit', layer: 'semantic', response: best.response, score: best.score, cosine: best.cosine, matched: best.question });
        }
      } catch (error) {
        if (!shadow) coalescer.release(ticket.exactKey);
        if (isAbortError(error)) throw error;
        fail('store');
        return bypass('store-failed', (error as Error).message);
      }
      return miss();
    },
    release(ticket) {
      if (!ticket.shadow) coalescer.release(ticket.exactKey);
    },
    async purge({ tenant }) {
      if (typeof tenant !== 'string') invalidOption('tenant', 'a string', tenant);
      await entries.newGeneration(tenant);
    },
    async idle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    commit(ticket, response) {
      const work = track(entries.storeAnswer(ticket, response));
      // Waiters read the exact layer once the entry is there (or go ahead on a failed store).
      if (!ticket.shadow) void work.finally(() => coalescer.release(ticket.exactKey)).catch(() => undefined);
      return work;
    },
  };
}
