import { createHash } from 'node:crypto';
import { withDeadline } from '../core/deadline.js';
import { invalidOption, isAbortError } from '../core/errors.js';
import type { ChatMessage, ChatRequest } from '../core/types.js';
import type { EmbeddingCache } from '../embedders/memo.js';
import type { Embedder } from '../embedders/types.js';
import { FORMATS } from '../formats/registry.js';
import type { CachedResponse, FormatName } from '../formats/wire-format.js';
import { defaultRuntime } from '../runtime.js';
import { memoryStore } from '../stores/memory.js';
import { isStore, type Store } from '../stores/types.js';
import { messageText } from '../text/message-text.js';
import { DEFAULT_VERIFIER_THRESHOLD, defaultVerifier, type Verifier } from './verifier.js';

export type { CachedResponse };

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
   * lexical, number, name and negation signals (bench/RESULTS.md has how it was trained and
   * scored); `cosineVerifier()` reproduces a plain cosine threshold.
   * @default defaultVerifier()
   */
  verifier?: Verifier;
  /**
   * Verifier score at or above which a semantic match is a hit. The default was chosen on the
   * training split so that at most 1% of related-but-different questions hit (bench/RESULTS.md).
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
}

/** Why a request was not looked up. */
export type BypassReason = 'header' | 'route-off' | 'tool-results' | 'no-user-message' | 'no-tenant' | 'store-failed';

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
}

export interface ProbeMatch {
  score: number;
  cosine: number;
  question: string;
  response: CachedResponse;
}

export type CacheLookup =
  | { status: 'hit'; layer: 'exact' | 'semantic'; response: CachedResponse; score?: number; cosine?: number; matched?: string }
  | { status: 'miss'; ticket: CacheTicket; failure?: string }
  | { status: 'bypass'; reason: BypassReason; failure?: string };

export interface CacheLookupOptions {
  tenant?: string | undefined;
  route?: string | undefined;
  format?: FormatName;
  /** True when the caller sent `Cache-Control: no-cache` or `x-compactor-cache: bypass`. */
  bypass?: boolean;
  signal?: AbortSignal | undefined;
}

export interface CacheStats {
  hits: { exact: number; semantic: number };
  misses: number;
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
  /** The semantic namespace and question of a request, without looking up (for cache-eval). */
  ticket(request: ChatRequest, options?: CacheLookupOptions): CacheTicket | BypassReason;
  stats(): CacheStats;
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
};

/** Fields that never change the answer. Every other field (known or not) is part of the scope. */
const NEUTRAL_FIELDS = new Set([
  'messages',
  'system',
  'stream',
  'stream_options',
  'user',
  'metadata',
  'store',
  'service_tier',
  'prompt_cache_key',
  'safety_identifier',
]);

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${stableJson((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const sha = (text: string): string => createHash('sha256').update(text).digest('base64url');

/** Whitespace-insensitive form of a message, for the exact layer and the context digest. */
function normalMessage(message: ChatMessage): string {
  const content = typeof message.content === 'string' ? message.content.normalize('NFC').replace(/\s+/g, ' ').trim() : stableJson(message.content ?? null);
  const rest: Record<string, unknown> = {};
  for (const key of ['name', 'tool_calls', 'tool_call_id', 'function_call']) if (message[key] !== undefined) rest[key] = message[key];
  return `${message.role}\u0001${content}\u0001${stableJson(rest)}`;
}

function hasOnlyText(message: ChatMessage): boolean {
  return typeof message.content === 'string' || (Array.isArray(message.content) && message.content.every((part) => part.type === 'text'));
}

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
export function createResponseCache(options: ResponseCacheOptions = {}): ResponseCache {
  if (typeof options !== 'object' || options === null) invalidOption('options', 'an object', options);
  const settings = { ...RESPONSE_CACHE_DEFAULTS, ...options };
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
  const store = settings.store ?? memoryStore();
  const embedder = settings.embedder === undefined ? defaultRuntime().defaultEmbedder() : settings.embedder;
  const embeddings = settings.embeddings ?? defaultRuntime().embeddings;
  const stats: CacheStats = { hits: { exact: 0, semantic: 0 }, misses: 0, bypass: {}, stored: 0, skipped: {}, failures: {} };
  const fail = (component: string): void => {
    stats.failures[component] = (stats.failures[component] ?? 0) + 1;
  };
  const bypass = (reason: BypassReason, failure?: string): CacheLookup => {
    stats.bypass[reason] = (stats.bypass[reason] ?? 0) + 1;
    return failure ? { status: 'bypass', reason, failure } : { status: 'bypass', reason };
  };

  function ticketOf(request: ChatRequest, lookup: CacheLookupOptions): CacheTicket | BypassReason {
    const route = lookup.route !== undefined ? (routes.get(lookup.route) ?? fallbackRoute) : fallbackRoute;
    if (lookup.bypass) return 'header';
    if (route.mode === 'off') return 'route-off';
    if (settings.requireTenant && !lookup.tenant) return 'no-tenant';
    const messages = request.messages;
    const last = messages[messages.length - 1];
    if (!last) return 'no-user-message';
    if ((last.role === 'tool' || last.role === 'function') && !settings.cacheToolCalls) return 'tool-results';
    if (last.role !== 'user') return 'no-user-message';
    const format = lookup.format ?? 'openai';
    const system: string[] = [];
    const conversation: ChatMessage[] = [];
    for (const message of messages) {
      if (message.role === 'system' || message.role === 'developer') system.push(normalMessage(message));
      else conversation.push(message);
    }
    const params: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(request)) if (!NEUTRAL_FIELDS.has(key)) params[key] = value;
    // Streamed and non-streamed requests share entries: replay converts between the two forms.
    const streamed = request.stream === true;
    const scope = sha(stableJson({ v: 1, format, tenant: lookup.tenant ?? '', route: lookup.route ?? '', system, params }));
    const exactKey = sha(`${scope}\u0002${conversation.map(normalMessage).join('\u0002')}`);
    let namespace: string | undefined;
    let question: string | undefined;
    if (route.mode === 'semantic' && embedder && hasOnlyText(last)) {
      const history = conversation.slice(0, -1);
      let start = 0;
      if (settings.contextTurns !== 'all') {
        let turns = 0;
        start = history.length;
        while (start > 0 && turns < settings.contextTurns) {
          start--;
          if (history[start]!.role === 'user') turns++;
        }
      }
      const context = sha(history.slice(start).map(normalMessage).join('\u0002'));
      namespace = sha(`${scope}\u0002${context}\u0002${embedder.id}\u0002${verifier.id}`);
      question = messageText(last).normalize('NFC').trim();
    }
    return { scope, exactKey, namespace, question, vector: undefined, ttlMs: route.ttlMs, format, streamed };
  }

  /** The entry the exact layer points to, if both the pointer and the entry are still there. */
  async function exactEntry(exactKey: string): Promise<{ question: string; response: CachedResponse } | undefined> {
    const id = await store.get(`rc:x:${exactKey}`);
    const entry = id ? await store.get(`rc:e:${id}`) : undefined;
    return entry ? (JSON.parse(entry) as { question: string; response: CachedResponse }) : undefined;
  }

  /** The best-scoring stored entry near `vector`, whatever its score. */
  async function nearest(namespace: string, question: string, vector: Float32Array, streamed: boolean): Promise<ProbeMatch | undefined> {
    const matches = await store.searchVectors(namespace, vector, settings.candidates, settings.minCosine);
    if (matches.length === 0) return undefined;
    const entries = await store.getMany(matches.map((match) => `rc:e:${match.id}`));
    let best: ProbeMatch | undefined;
    entries.forEach((text, index) => {
      if (!text) return;
      const entry = JSON.parse(text) as { question: string; response: CachedResponse };
      if (!FORMATS[entry.response.format].replayable(entry.response, streamed)) return;
      const score = verifier.score(question, entry.question, matches[index]!.score);
      if (!best || score > best.score) best = { score, cosine: matches[index]!.score, question: entry.question, response: entry.response };
    });
    return best;
  }

  const thresholdFor = (route: string | undefined): number => (route !== undefined ? routes.get(route)?.threshold : undefined) ?? threshold;

  /** Store a completed answer under its ticket's keys, unless its format says it is not a finished answer. */
  async function storeAnswer(ticket: CacheTicket, response: CachedResponse): Promise<boolean> {
    const format = FORMATS[response.format] as (typeof FORMATS)[FormatName] | undefined;
    const reason = format ? format.uncacheableReason(response, settings.cacheToolCalls) : 'incomplete';
    const serialized = reason ? '' : JSON.stringify({ question: ticket.question ?? null, response, at: Date.now() });
    const skip = reason ?? (serialized.length > settings.maxEntryBytes ? 'too-large' : null);
    if (skip) {
      stats.skipped[skip] = (stats.skipped[skip] ?? 0) + 1;
      return false;
    }
    const id = createHash('sha256').update(`${ticket.exactKey}\u0002${serialized}`).digest('base64url').slice(0, 32);
    const ttl = ticket.ttlMs > 0 ? ticket.ttlMs : undefined;
    try {
      // Entry first, pointers after: a reader never follows a pointer to a missing entry it
      // could misread, and a failure half-way leaves at worst an unreferenced entry.
      await store.set(`rc:e:${id}`, serialized, ttl);
      await store.set(`rc:x:${ticket.exactKey}`, id, ttl);
      if (ticket.namespace && ticket.vector) await store.addVector(ticket.namespace, id, ticket.vector, ttl);
    } catch (error) {
      if (isAbortError(error)) throw error;
      fail('store');
      return false;
    }
    stats.stored++;
    return true;
  }

  const pending = new Set<Promise<boolean>>();
  return {
    store,
    embedder,
    embeddings,
    verifier,
    ticket: (request, lookup = {}) => ticketOf(request, lookup),
    stats: () => structuredClone(stats),
    async probe(request, lookup = {}) {
      const ticket = ticketOf(request, lookup);
      if (typeof ticket === 'string') return undefined;
      const exact = await exactEntry(ticket.exactKey);
      if (exact && FORMATS[exact.response.format].replayable(exact.response, ticket.streamed))
        return { layer: 'exact', score: 1, cosine: 1, question: exact.question, response: exact.response };
      if (!ticket.namespace || !ticket.question || !embedder) return undefined;
      const [vector] = (await embeddings.embed(embedder, [ticket.question], { signal: lookup.signal })) as [Float32Array];
      const best = await nearest(ticket.namespace, ticket.question, vector, ticket.streamed);
      return best ? { layer: 'semantic', ...best } : undefined;
    },
    async lookup(request, lookup = {}) {
      const made = ticketOf(request, lookup);
      if (typeof made === 'string') return bypass(made);
      let ticket = made;
      // Exact layer.
      try {
        const exact = await exactEntry(ticket.exactKey);
        // An entry that cannot be replayed in the requested form is a miss; the answer replaces it.
        if (exact && FORMATS[exact.response.format].replayable(exact.response, ticket.streamed)) {
          stats.hits.exact++;
          return { status: 'hit', layer: 'exact', response: exact.response };
        }
      } catch (error) {
        if (isAbortError(error)) throw error;
        fail('store');
        return bypass('store-failed', (error as Error).message);
      }
      if (!ticket.namespace || !ticket.question || !embedder) {
        stats.misses++;
        return { status: 'miss', ticket };
      }
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
        if (isAbortError(error)) throw error;
        fail('embedder');
        stats.misses++;
        return { status: 'miss', ticket, failure: (error as Error).message };
      }
      ticket = { ...ticket, vector };
      try {
        const best = await nearest(ticket.namespace!, ticket.question!, vector, ticket.streamed);
        if (best && best.score >= thresholdFor(lookup.route)) {
          stats.hits.semantic++;
          return { status: 'hit', layer: 'semantic', response: best.response, score: best.score, cosine: best.cosine, matched: best.question };
        }
      } catch (error) {
        if (isAbortError(error)) throw error;
        fail('store');
        return bypass('store-failed', (error as Error).message);
      }
      stats.misses++;
      return { status: 'miss', ticket };
    },
    async idle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    commit(ticket, response) {
      const work = storeAnswer(ticket, response);
      pending.add(work);
      void work.finally(() => pending.delete(work)).catch(() => undefined);
      return work;
    },
  };
}
