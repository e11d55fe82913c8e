import type { CacheLookup, CacheTicket, ResponseCache } from '../cache/response-cache.js';
import { invalidOption, rethrowIfAborted } from '../core/errors.js';
import type { CacheAccess, CacheVerdict, CompactionStats } from '../core/stats.js';
import { failureOf } from '../core/strategy.js';
import { inSpan } from '../core/telemetry.js';
import type { ChatRequest } from '../core/types.js';
import type { CachedResponse, FormatName } from '../formats/wire-format.js';
import type { CompactOptions } from './types.js';
import type { ResolvedOptions } from './options.js';

/** A call's cache access, from `cacheAccess` or the deprecated `bypassCache` and `serveFromCache`. */
export function cacheAccessOf(options: CompactOptions): CacheAccess {
  const { cacheAccess } = options;
  if (cacheAccess !== undefined) {
    if (cacheAccess !== 'read-write' && cacheAccess !== 'write-only' && cacheAccess !== 'none')
      invalidOption('cacheAccess', '"read-write", "write-only" or "none"', cacheAccess);
    return cacheAccess;
  }
  if (options.bypassCache === true) return 'none';
  return options.serveFromCache === false ? 'write-only' : 'read-write';
}

/** The cache stage: a lookup that can fail only by abort (anything else is counted, and the request goes on uncached). */
export async function lookUp(
  settings: ResolvedOptions,
  canonical: ChatRequest,
  format: FormatName,
  compactOptions: CompactOptions,
  stats: CompactionStats,
  shadow = false,
): Promise<CacheLookup | undefined> {
  const cache = settings.cache!;
  const started = settings.clock();
  let lookup: CacheLookup | undefined;
  try {
    lookup = await inSpan(
      'context-compactor.cache.lookup',
      shadow ? { 'context_compactor.mode': 'shadow' } : undefined,
      () =>
        cache.lookup(canonical, {
          tenant: compactOptions.tenant,
          route: compactOptions.route,
          format,
          access: cacheAccessOf(compactOptions),
          shadow,
          signal: compactOptions.signal,
        }),
      (found) => ({
        'context_compactor.cache.status': found.status,
        'context_compactor.cache.hit': found.status === 'hit',
        'context_compactor.cache.layer': found.status === 'hit' ? found.layer : undefined,
      }),
    );
  } catch (error) {
    rethrowIfAborted(error, compactOptions.signal);
    stats.failures.push(failureOf('cache', error));
  }
  const verdict: CacheVerdict = { status: lookup?.status ?? 'bypass', ms: settings.clock() - started };
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
export function committer(cache: ResponseCache, ticket: CacheTicket): { commit: (response: CachedResponse) => Promise<boolean>; release: () => void } {
  let settled = false;
  return {
    async commit(response) {
      // One answer per request: a second commit (a retry loop, say) is ignored.
      if (settled) return false;
      settled = true;
      return cache.commit(ticket, response);
    },
    release() {
      if (settled) return;
      settled = true;
      cache.release(ticket);
    },
  };
}
