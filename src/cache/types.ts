import type { ChatRequest } from '../core/types.js';
import type { BypassReason, CacheAccess } from '../core/stats.js';
import type { EmbeddingCache } from '../embedders/memo.js';
import type { Embedder } from '../embedders/types.js';
import type { CachedResponse, FormatName } from '../formats/wire-format.js';
import type { Store } from '../stores/types.js';
import type { Verifier } from './verifier.js';

export type { BypassReason, CacheAccess, CachedResponse };

export interface CacheTicket {
  readonly scope: string;
  readonly exactKey: string;
  /** Semantic namespace and question, or undefined when only the exact layer applies. */
  readonly namespace: string | undefined;
  readonly question: string | undefined;
  readonly vector: Float32Array | undefined;
  readonly ttlMs: number;
  readonly format: FormatName;
  readonly streamed: boolean;
  /** The scope's generation (see `purge`): bumped, it leaves older entries unreachable. */
  readonly generation?: string;
  /** From a shadow lookup: it claimed no in-flight slot, so committing or releasing it frees none. */
  readonly shadow?: boolean;
}

export interface ProbeMatch {
  score: number;
  cosine: number;
  question: string;
  response: CachedResponse;
}

export type CacheLookup =
  | { status: 'hit'; layer: 'exact' | 'semantic'; response: CachedResponse; score?: number; cosine?: number; matched?: string }
  | { status: 'miss'; ticket: CacheTicket; failure?: string; writeOnly?: boolean; coalesced?: boolean }
  | { status: 'bypass'; reason: BypassReason; failure?: string };

export interface CacheLookupOptions {
  tenant?: string | undefined;
  route?: string | undefined;
  format?: FormatName;
  /**
   * `none` when the caller sent `Cache-Control: no-cache` or `x-compactor-cache: bypass`;
   * `write-only` to answer nothing from the cache but let the answer be stored (a caller the
   * proxy cannot vouch for yet: see the proxy's `credentialTtlMs`).
   * @default 'read-write'
   */
  access?: CacheAccess;
  /**
   * Shadow mode: look up as usual, but wait for no identical request in flight and claim none, so
   * a lookup adds no wait. A hit is reported, not served, and counted under `shadowHits`.
   * @default false
   */
  shadow?: boolean;
  /** @deprecated Use `access: 'none'`; removed in the next major. */
  bypass?: boolean;
  /** @deprecated Use `access: 'write-only'`; removed in the next major. */
  writeOnly?: boolean;
  signal?: AbortSignal | undefined;
}

/** The counters of one response cache, since it was created (`cache.stats()`). */
export interface ResponseCacheStats {
  hits: { exact: number; semantic: number };
  misses: number;
  /** Requests that waited for an identical one in flight. */
  coalesced: number;
  /** Hits of shadow lookups (`shadow: true`): answers that would have been served, and were not. */
  shadowHits: number;
  /** Semantic matches the guard refused (negation, numbers or names differ). */
  guarded: number;
  /** Entries stored without a vector whose vector was added later. */
  backfilled: number;
  bypass: Partial<Record<BypassReason, number>>;
  stored: number;
  /** Responses not stored, by reason (incomplete, tool-calls, error, too-large…). */
  skipped: Record<string, number>;
  /** Failures recovered from, by component (`store`, `embedder`). */
  failures: Record<string, number>;
}

export interface ResponseCache {
  lookup(request: ChatRequest, options?: CacheLookupOptions): Promise<CacheLookup>;
  /** Store a completed response for a missed request. Resolves false when it was not cacheable. */
  commit(ticket: CacheTicket, response: CachedResponse): Promise<boolean>;
  /** A missed request ended with nothing to commit: identical requests waiting on it go ahead. `commit` releases too. */
  release(ticket: CacheTicket): void;
  /** Make every entry of a tenant unreachable (they expire with their TTL). Resolves when done. */
  purge(scope: { tenant: string }): Promise<void>;
  /** The semantic namespace and question of a request, without looking up (for cache-eval). */
  ticket(request: ChatRequest, options?: CacheLookupOptions): CacheTicket | BypassReason;
  stats(): ResponseCacheStats;
  /** Resolves when no commit is in flight (adapters commit after relaying an answer; tests and graceful shutdowns wait here). */
  idle(): Promise<void>;
  /**
   * The entry a lookup would consider, with its score, whatever the threshold (for evaluation and
   * debugging; not counted in stats, and store errors are thrown).
   */
  probe(request: ChatRequest, options?: CacheLookupOptions): Promise<(ProbeMatch & { layer: 'exact' | 'semantic' }) | undefined>;
  /** The memo the cache embeds through. */
  readonly embeddings: EmbeddingCache;
  readonly store: Store;
  readonly embedder: Embedder | null;
  readonly verifier: Verifier;
}
