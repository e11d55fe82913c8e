import { checkedByFactory, defineOptions, rules } from '../core/define-options.js';
import { invalidOption } from '../core/errors.js';
import type { EmbeddingCache } from '../embedders/memo.js';
import type { Embedder } from '../embedders/types.js';
import { isStore, type Store } from '../stores/types.js';
import { DEFAULT_VERIFIER_THRESHOLD, defaultVerifier, type Verifier } from './verifier.js';

export interface RouteCacheOptions {
  /** Verifier score needed for a semantic hit on this route. */
  threshold?: number;
  /** Lifetime of entries written on this route. */
  ttlMs?: number;
  /** `off` disables the cache on this route; `exact` keeps only the exact layer. */
  mode?: 'semantic' | 'exact' | 'off';
}

export interface ResponseCacheOptions {
  /**
   * Where entries and their vectors live. Share one `redisStore()` between instances to share hits.
   * @default memoryStore()
   */
  store?: Store;
  /**
   * Embedder of the semantic layer. Its id is part of the namespace, so changing it starts afresh.
   * `null` keeps the exact layer alone.
   * @default the runtime's default encoder (USE-lite; null when its optional packages are absent)
   */
  embedder?: Embedder | null;
  /**
   * Embedding memo. The default is the process-wide memo relevance strategies use too, so a
   * question the cache embedded is not embedded again to score the history (same embedder id,
   * same text).
   * @default defaultRuntime().embeddings
   */
  embeddings?: EmbeddingCache;
  /**
   * Scores a (query, cached question) pair. The default is a logistic model over cosine and
   * lexical, number, name and negation signals (bench/notes/HISTORY.md has how it was trained and
   * scored); `cosineVerifier()` reproduces a plain cosine threshold.
   * @default defaultVerifier()
   */
  verifier?: Verifier;
  /**
   * Verifier score at or above which a semantic match is a hit. The default was chosen on the
   * training split so that at most 1% of related-but-different questions hit (bench/notes/HISTORY.md).
   * @default the shipped verifier's threshold
   */
  threshold?: number;
  /**
   * `semantic` checks the exact layer then the semantic one; `exact` only the exact layer.
   * @default 'semantic'
   */
  mode?: 'semantic' | 'exact';
  /**
   * How much of the conversation before the latest user message must be identical for a hit:
   * `'all'` (the whole history), or the last N turns (a turn is a user message and the replies
   * and tool messages after it). Context is matched exactly, not by similarity: "How old is he?"
   * after "Tim Cook." and after "Sam Altman." embed almost identically.
   * @default 'all'
   */
  contextTurns?: number | 'all';
  /**
   * Lifetime of an entry, in milliseconds (0: until evicted).
   * @default 3600000 (1 hour)
   */
  ttlMs?: number;
  /** Per-route overrides, keyed by the route string passed to `compact`. */
  routes?: Record<string, RouteCacheOptions>;
  /**
   * Cache responses that call tools, and look up requests whose last message is a tool result.
   * Tool calls act on the world, so replaying them is rarely right.
   * @default false
   */
  cacheToolCalls?: boolean;
  /**
   * Bypass the cache for requests without a tenant, so a misconfigured tenant resolver cannot
   * make every caller share one scope.
   * @default false
   */
  requireTenant?: boolean;
  /** Cosine below which candidates are not even scored. @default 0.5 */
  minCosine?: number;
  /** Nearest entries scored per lookup. @default 4 */
  candidates?: number;
  /** Deadline of the query embedding; past it only the exact layer answers. @default 500 */
  embedTimeoutMs?: number;
  /** Largest response stored, in bytes of JSON. @default 1048576 */
  maxEntryBytes?: number;
  /**
   * Refuse a semantic hit when the two questions differ in negation ("not", "never"), in their
   * numbers, or in the names they mention, whatever the verifier's score: "Is it safe to eat raw
   * eggs?" must not answer "Is it not safe to eat raw eggs?". True lets the verifier's score
   * alone decide.
   * @default false
   */
  allowConflicts?: boolean;
  /**
   * Identical requests that arrive while the first is still waiting for its answer wait for it
   * (up to this many milliseconds) and are answered from the cache, so one upstream call answers
   * all of them. 0 turns coalescing off.
   * @default 30000
   */
  coalesceMs?: number;
  /**
   * Bypass the cache for sampled requests (`temperature` above 0, or `top_p` below 1): their
   * callers may want a different answer each time.
   * @default false
   */
  skipSampled?: boolean;
  /**
   * Milliseconds clock of the entries' timestamps and of the purge memo; injected in tests.
   * @default Date.now
   */
  clock?: () => number;
}

export const RESPONSE_CACHE_DEFAULTS = {
  mode: 'semantic' as 'semantic' | 'exact',
  contextTurns: 'all' as number | 'all',
  ttlMs: 60 * 60 * 1000,
  cacheToolCalls: false,
  requireTenant: false,
  minCosine: 0.5,
  candidates: 4,
  embedTimeoutMs: 500,
  maxEntryBytes: 1024 * 1024,
  allowConflicts: false,
  coalesceMs: 30_000,
  skipSampled: false,
};

/** Every option `createResponseCache` takes. */
export const RESPONSE_CACHE_OPTION_NAMES: readonly (keyof ResponseCacheOptions)[] = [
  'store',
  'embedder',
  'embeddings',
  'verifier',
  'threshold',
  'mode',
  'contextTurns',
  'ttlMs',
  'routes',
  'cacheToolCalls',
  'requireTenant',
  'minCosine',
  'candidates',
  'embedTimeoutMs',
  'maxEntryBytes',
  'allowConflicts',
  'coalesceMs',
  'skipSampled',
  'clock',
];

function checkRange(option: string, value: unknown, minimum: number, maximum: number, integer = false): void {
  if (typeof value !== 'number' || !(value >= minimum && value <= maximum) || (integer && !Number.isInteger(value))) {
    invalidOption(option, `${integer ? 'an integer' : 'a number'} from ${minimum} to ${maximum}`, value);
  }
}

/**
 * A response cache with an exact layer and a context-aware semantic layer, scoped so that no
 * lookup crosses tenant, model, system prompt, tools, route or answer-changing parameters.
 *
 * @example
 * const cache = createResponseCache({ store: redisStore({ url }) })
 * const compactor = createCompactor({ maxInputTokens: 8000, cache })
 */
export const RESPONSE_CACHE_OPTIONS = defineOptions<ResponseCacheOptions, typeof RESPONSE_CACHE_DEFAULTS>({
  factory: 'createResponseCache',
  defaults: RESPONSE_CACHE_DEFAULTS,
  rules: {
    ...checkedByFactory<ResponseCacheOptions>(RESPONSE_CACHE_OPTION_NAMES),
    mode: rules.oneOf('semantic', 'exact'),
    cacheToolCalls: rules.boolean,
    requireTenant: rules.boolean,
    allowConflicts: rules.boolean,
    skipSampled: rules.boolean,
    clock: rules.function,
  },
  docs: [['src/cache/options.ts', 'ResponseCacheOptions']],
});

export type CacheSettings = ReturnType<typeof RESPONSE_CACHE_OPTIONS.parse>;

/** The validated options of one cache, with the verifier, its threshold and each route's settings resolved. */
export interface ResolvedCacheOptions {
  settings: CacheSettings;
  verifier: Verifier;
  threshold: number;
  routes: Map<string, Required<RouteCacheOptions>>;
  fallbackRoute: Required<RouteCacheOptions>;
}

export function resolveCacheOptions(options: ResponseCacheOptions): ResolvedCacheOptions {
  if (typeof options !== 'object' || options === null) invalidOption('options', 'an object', options);
  const settings = RESPONSE_CACHE_OPTIONS.parse(options);
  if (settings.store !== undefined && !isStore(settings.store)) invalidOption('store', 'a Store (memoryStore() or redisStore())', settings.store);
  if (
    settings.embedder !== undefined &&
    settings.embedder !== null &&
    (typeof settings.embedder?.embed !== 'function' || typeof settings.embedder?.id !== 'string')
  ) {
    invalidOption('embedder', 'an Embedder ({ id, dimensions, embed }) or null', settings.embedder);
  }
  if (settings.verifier !== undefined && (typeof settings.verifier?.score !== 'function' || typeof settings.verifier?.id !== 'string')) {
    invalidOption('verifier', 'a Verifier ({ id, score })', settings.verifier);
  }
  if (settings.mode !== 'semantic' && settings.mode !== 'exact') invalidOption('mode', '"semantic" or "exact"', settings.mode);
  if (settings.contextTurns !== 'all') checkRange('contextTurns', settings.contextTurns, 0, 1000, true);
  checkRange('ttlMs', settings.ttlMs, 0, 365 * 24 * 3600 * 1000, true);
  checkRange('minCosine', settings.minCosine, -1, 1);
  checkRange('candidates', settings.candidates, 1, 100, true);
  checkRange('embedTimeoutMs', settings.embedTimeoutMs, 1, 600_000, true);
  checkRange('maxEntryBytes', settings.maxEntryBytes, 1024, 1 << 30, true);
  checkRange('coalesceMs', settings.coalesceMs, 0, 600_000, true);
  for (const name of ['allowConflicts', 'skipSampled', 'cacheToolCalls', 'requireTenant'] as const)
    if (typeof settings[name] !== 'boolean') invalidOption(name, 'a boolean', settings[name]);
  const verifier = settings.verifier ?? defaultVerifier();
  const threshold = settings.threshold ?? (settings.verifier ? Number.NaN : DEFAULT_VERIFIER_THRESHOLD);
  if (settings.verifier && settings.threshold === undefined) invalidOption('threshold', 'set when a custom verifier is given', undefined);
  checkRange('threshold', threshold, -1, 1);
  const routes = new Map<string, Required<RouteCacheOptions>>();
  for (const [route, override] of Object.entries(settings.routes ?? {})) {
    if (typeof override !== 'object' || override === null) invalidOption(`routes.${route}`, 'an object', override);
    const merged = { threshold, ttlMs: settings.ttlMs, mode: settings.mode as RouteCacheOptions['mode'], ...override } as Required<RouteCacheOptions>;
    checkRange(`routes.${route}.threshold`, merged.threshold, -1, 1);
    checkRange(`routes.${route}.ttlMs`, merged.ttlMs, 0, 365 * 24 * 3600 * 1000, true);
    if (!['semantic', 'exact', 'off'].includes(merged.mode)) invalidOption(`routes.${route}.mode`, '"semantic", "exact" or "off"', merged.mode);
    routes.set(route, merged);
  }
  const fallbackRoute: Required<RouteCacheOptions> = { threshold, ttlMs: settings.ttlMs, mode: settings.mode };
  return { settings, verifier, threshold, routes, fallbackRoute };
}
