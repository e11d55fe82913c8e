import type { CompactionStats } from '../core/stats.js';

/** The `x-compactor-*` request headers adapters read, and the response headers they add. */

/** True when the caller asked not to be served from a cache: `Cache-Control: no-cache`/`no-store`, or `x-compactor-cache: bypass`. */
export function bypassRequested(header: (name: string) => string | null | undefined): boolean {
  const control = (header('cache-control') ?? '').toLowerCase();
  if (/(^|[\s,])no-(cache|store)($|[\s,=])/.test(control)) return true;
  return (header('x-compactor-cache') ?? '').trim().toLowerCase() === 'bypass';
}

/** True when the caller asked for its request to go uncompacted: `x-compactor-compact: off`. */
export function compactionOffRequested(header: (name: string) => string | null | undefined): boolean {
  return (header('x-compactor-compact') ?? '').trim().toLowerCase() === 'off';
}

/** The mode a request asked for: `x-compactor-mode: shadow` (a request can ask for shadow, never out of it). */
export function shadowRequested(header: (name: string) => string | null | undefined): boolean {
  return (header('x-compactor-mode') ?? '').trim().toLowerCase() === 'shadow';
}

/** The `x-compactor-*` response headers for a compaction (and, in shadow mode, for what it would have done). */
export function compactionHeaders(stats: CompactionStats): Record<string, string> {
  const headers: Record<string, string> = {
    'x-compactor-tokens-before': String(stats.tokensBefore),
    'x-compactor-tokens-after': String(stats.tokensAfter),
    'x-compactor-strategy': stats.strategies.map((step) => step.name).join(',') || 'none',
  };
  if (stats.cache) headers['x-compactor-cache'] = stats.cache.status;
  const shadow = stats.shadow;
  if (shadow) {
    headers['x-compactor-mode'] = 'shadow';
    headers['x-compactor-shadow-tokens-after'] = String(shadow.tokensAfter);
    headers['x-compactor-shadow-tokens-saved'] = String(shadow.tokensSaved);
    if (shadow.dollarsSaved !== undefined) headers['x-compactor-shadow-dollars-saved'] = String(shadow.dollarsSaved);
    headers['x-compactor-shadow-strategy'] = shadow.strategies.map((step) => step.name).join(',') || 'none';
    if (shadow.cache) headers['x-compactor-shadow-cache'] = shadow.cache.status;
  }
  return headers;
}
