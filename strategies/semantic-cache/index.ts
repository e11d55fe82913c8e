import type { CacheLookup, ResponseCache } from '../../src/cache/response-cache.js';
import type { Strategy } from '../../src/strategy.js';

/**
 * The response cache as a strategy: it leaves the messages alone and, on a hit, returns the cached
 * response, which stops the pipeline. `createCompactor({ cache })` runs it first, before any
 * compaction and whether or not the request is over budget.
 *
 * @example
 * pipeline('cached-relevance', [semanticCache(createResponseCache()), relevance()])
 */
export function semanticCache(cache: ResponseCache): Strategy {
  return {
    name: 'semantic-cache',
    async apply(messages, context) {
      const lookup: CacheLookup = await cache.lookup(
        { ...context.request, messages: [...messages] },
        { tenant: context.tenant, route: context.route, format: context.format ?? 'openai', bypass: context.bypassCache ?? false, signal: context.signal },
      );
      const info: Record<string, unknown> = { cache: lookup.status };
      if (lookup.status === 'hit') {
        info.layer = lookup.layer;
        if (lookup.score !== undefined) info.score = Number(lookup.score.toFixed(4));
      }
      if (lookup.status === 'bypass') info.reason = lookup.reason;
      const failure = lookup.status !== 'hit' ? lookup.failure : undefined;
      return {
        messages,
        cache: lookup,
        info,
        ...(failure ? { failures: [{ strategy: 'semantic-cache', code: 'upstream.failed', message: failure }] } : {}),
      };
    },
  };
}
