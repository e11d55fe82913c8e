import type { CacheAccess, CompactionMode, CompactionStats } from '../core/stats.js';
import type { ChatRequest } from '../core/types.js';
import type { CachedResponse, FormatName, Replay } from '../formats/wire-format.js';

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
   * How this request may use the response cache. `none` skips it both ways (adapters set it from
   * `Cache-Control: no-cache` or `x-compactor-cache: bypass`). `write-only` looks nothing up but
   * lets the answer be stored (the proxy sets it for a caller whose own key the upstream has not
   * accepted recently, so a revoked key gets no cached answers).
   * @default 'read-write'
   */
  cacheAccess?: CacheAccess;
  /**
   * Forward this request as it came: no compaction and no cache hints (the response cache still
   * answers and stores). Adapters set it from `x-compactor-compact: off`, the proxy also from a
   * key's `skipCompaction`. `stats.passThrough` says `skipped`.
   * @default false
   */
  skipCompaction?: boolean;
  /**
   * `shadow`: compact and look up as usual, report it in `stats.shadow`, but return the request as
   * it came (the same object) and serve nothing from the cache. Adapters set it from
   * `x-compactor-mode: shadow`, the proxy also from a key's `mode`.
   * @default the compactor's `mode`
   */
  mode?: CompactionMode;
  /** @deprecated Use `cacheAccess: 'none'`; removed in the next major. */
  bypassCache?: boolean;
  /** @deprecated Use `cacheAccess: 'write-only'` for `false`; removed in the next major. */
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
  readonly replay: Replay;
  /** @deprecated Use `replay` (the same value); removed in the next major. */
  readonly reply: Replay;
  readonly stats: CompactionStats;
}

/** What `compact()` did: answered from the cache, or compacted for the model. */
export type CompactResult<T = ChatRequest> = Compacted<T> | Cached;
