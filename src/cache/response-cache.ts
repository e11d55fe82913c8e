import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { withDeadline } from '../core/deadline.js';
import { timeSlicer } from '../core/turns.js';
import { CompactorError, invalidOption, isAbortError } from '../core/errors.js';
import { checkedByFactory, defineOptions, rules } from '../core/define-options.js';
import type { ChatMessage, ChatRequest } from '../core/types.js';
import type { EmbeddingCache } from '../embedders/memo.js';
import type { Embedder } from '../embedders/types.js';
import { FORMATS } from '../formats/registry.js';
import type { CachedResponse, FormatName } from '../formats/wire-format.js';
import { defaultRuntime } from '../runtime.js';
import { memoryStore } from '../stores/memory.js';
import { isStore, type Store } from '../stores/types.js';
import { messageText } from '../text/message-text.js';
import { profileMemo, reversed, type TextProfile } from './features.js';
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
   * lexical, number, name and negation signals (bench/HISTORY.md has how it was trained and
   * scored); `cosineVerifier()` reproduces a plain cosine threshold.
   * @default defaultVerifier()
   */
  verifier?: Verifier;
  /**
   * Verifier score at or above which a semantic match is a hit. The default was chosen on the
   * training split so that at most 1% of related-but-different questions hit (bench/HISTORY.md).
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
}

/** Why a request was not looked up. */
export type { BypassReason } from '../core/stats.js';
import type { BypassReason } from '../core/stats.js';

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
  /** True when the caller sent `Cache-Control: no-cache` or `x-compactor-cache: bypass`. */
  bypass?: boolean;
  /**
   * Do not answer from the cache, but let the answer be stored (a caller the proxy cannot vouch
   * for yet: see the proxy's `credentialTtlMs`).
   */
  writeOnly?: boolean;
  signal?: AbortSignal | undefined;
}

export interface CacheStats {
  hits: { exact: number; semantic: number };
  misses: number;
  /** Requests that waited for an identical one in flight. */
  coalesced: number;
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
];

/** Fields that never change the answer. Every other field (known or not) is part of the scope. */
const NEUTRAL_FIELDS = new Set(['messages', 'system', 'stream', 'stream_options', 'metadata', 'store', 'service_tier', 'prompt_cache_key']);

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

/**
 * A user's words as the exact layer compares them: Unicode NFKC, case, runs of whitespace and
 * trailing punctuation do not make another question.
 */
export function normalQuestion(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[\s.?!;:,…。？！]+$/u, '');
}

/** Longest question normalized for the exact layer; a longer one (a pasted log) is compared as sent. */
const NORMALIZED_CHARS = 4096;

/**
 * A message as the keys see it. The question (the latest user message, `question` true) is
 * normalized per `normalQuestion`; the rest of the conversation is its context and is matched as
 * sent, which also keeps a long history cheap to key (no pass over megabytes of text).
 */
function keyedMessage(message: ChatMessage, question = false): string {
  let content: string;
  if (question && typeof message.content === 'string' && message.content.length <= NORMALIZED_CHARS) content = normalQuestion(message.content);
  else if (question && hasOnlyText(message) && Array.isArray(message.content))
    content = normalQuestion(
      message.content
        .map((part) => String(part.text ?? ''))
        .join('\n')
        .slice(0, NORMALIZED_CHARS * 2),
    );
  else content = typeof message.content === 'string' ? message.content : stableJson(message.content ?? null);
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
  },
  docs: [['src/cache/response-cache.ts', 'ResponseCacheOptions']],
});

export function createResponseCache(options: ResponseCacheOptions = {}): ResponseCache {
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
  const store = settings.store ?? memoryStore();
  const embedder = settings.embedder === undefined ? defaultRuntime().defaultEmbedder() : settings.embedder;
  const embeddings = settings.embeddings ?? defaultRuntime().embeddings;
  const stats: CacheStats = {
    hits: { exact: 0, semantic: 0 },
    misses: 0,
    coalesced: 0,
    guarded: 0,
    backfilled: 0,
    bypass: {},
    stored: 0,
    skipped: {},
    failures: {},
  };
  const profileOf = profileMemo();
  const fail = (component: string): void => {
    stats.failures[component] = (stats.failures[component] ?? 0) + 1;
  };
  const bypass = (reason: BypassReason, failure?: string): CacheLookup => {
    stats.bypass[reason] = (stats.bypass[reason] ?? 0) + 1;
    return failure ? { status: 'bypass', reason, failure } : { status: 'bypass', reason };
  };

  // Digests of the messages before the question, by identity: `prepareDigests` computes a long
  // history's in slices that yield to the event loop, and the (synchronous) ticket then finds them.
  const digests = new WeakMap<ChatMessage, string>();
  function digestOf(message: ChatMessage, question: boolean): string {
    if (question) return sha(keyedMessage(message, true));
    let digest = digests.get(message);
    if (digest === undefined) {
      digest = sha(keyedMessage(message));
      digests.set(message, digest);
    }
    return digest;
  }
  async function prepareDigests(messages: readonly ChatMessage[]): Promise<void> {
    if (messages.length < 256) return;
    const pause = timeSlicer();
    for (const message of messages) {
      digestOf(message, false);
      await pause();
    }
  }

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
    if (
      settings.skipSampled &&
      ((typeof request.temperature === 'number' && request.temperature > 0) || (typeof request.top_p === 'number' && request.top_p < 1))
    )
      return 'sampled';
    const format = lookup.format ?? 'openai';
    const system: string[] = [];
    const conversation: ChatMessage[] = [];
    for (const message of messages) {
      if (message.role === 'system' || message.role === 'developer') system.push(keyedMessage(message));
      else conversation.push(message);
    }
    const params: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(request)) if (!NEUTRAL_FIELDS.has(key)) params[key] = value;
    // The end user the request is for (OpenAI's `user`, Anthropic's `metadata.user_id`) scopes it too: one user's answer is never another's.
    const userId = (request.metadata as { user_id?: unknown } | undefined)?.user_id;
    if (userId !== undefined) params['metadata.user_id'] = userId;
    // Streamed and non-streamed requests share entries: replay converts between the two forms.
    const streamed = request.stream === true;
    const scope = sha(stableJson({ v: 1, format, tenant: lookup.tenant ?? '', route: lookup.route ?? '', system, params }));
    // One digest per message, shared by the exact key and the context's.
    const digests = conversation.map((message, index) => digestOf(message, index === conversation.length - 1));
    const exactKey = sha(`${scope}\u0002${digests.join('\u0002')}`);
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
      const context = sha(digests.slice(start, history.length).join('\u0002'));
      namespace = sha(`${scope}\u0002${context}\u0002${embedder.id}\u0002${verifier.id}`);
      question = messageText(last).normalize('NFKC').trim();
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
      let score = verifier.score(question, entry.question, matches[index]!.score);
      if (!settings.allowConflicts && conflict(profileOf(question), profileOf(entry.question))) {
        if (score >= threshold) stats.guarded++;
        score = 0;
      }
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
    // Stored without a vector (the query's embedding missed its deadline, as in a cold process):
    // embed it now, off the request path, so the entry can be a semantic hit too.
    if (ticket.namespace && !ticket.vector && ticket.question && embedder) track(backfill(ticket.namespace, ticket.question, id, ttl));
    return true;
  }

  async function backfill(namespace: string, question: string, id: string, ttl: number | undefined): Promise<boolean> {
    try {
      const [vector] = (await embeddings.embed(embedder!, [question])) as [Float32Array];
      await store.addVector(namespace, id, vector, ttl);
      stats.backfilled++;
      return true;
    } catch {
      fail('backfill');
      return false;
    }
  }

  // Generations: a tenant's keys include its generation, so `purge` (a new generation) leaves its
  // older entries unreachable. Read through a short memo: another instance's purge takes effect
  // here within GENERATION_MEMO_MS.
  const GENERATION_MEMO_MS = 1000;
  const generations = new LRUCache<string, { value: string; at: number }>({ max: 10_000 });
  const generationKey = (tenant: string | undefined) => `rc:g:${sha(tenant ?? '')}`;
  async function generationOf(tenant: string | undefined): Promise<string> {
    const key = generationKey(tenant);
    const memo = generations.get(key);
    if (memo && Date.now() - memo.at < GENERATION_MEMO_MS) return memo.value;
    const value = (await store.get(key)) ?? '';
    generations.set(key, { value, at: Date.now() });
    return value;
  }
  const withGeneration = (ticket: CacheTicket, generation: string): CacheTicket =>
    generation === ''
      ? ticket
      : {
          ...ticket,
          generation,
          exactKey: sha(`${ticket.exactKey}\u0002${generation}`),
          namespace: ticket.namespace === undefined ? undefined : sha(`${ticket.namespace}\u0002${generation}`),
        };

  // Coalescing: the first miss of an exact key is in flight until it commits or is released;
  // identical lookups meanwhile wait for it, then read the exact layer again.
  const inflight = new Map<string, { done: Promise<void>; settle: () => void; timer: NodeJS.Timeout }>();
  function claim(exactKey: string): void {
    if (settings.coalesceMs === 0 || inflight.has(exactKey)) return;
    let settle!: () => void;
    const done = new Promise<void>((resolve) => (settle = resolve));
    // Released by itself if its owner never commits nor releases (an adapter that forgot).
    const timer = setTimeout(() => releaseKey(exactKey), settings.coalesceMs);
    timer.unref?.();
    inflight.set(exactKey, { done, settle, timer });
  }
  function releaseKey(exactKey: string): void {
    const entry = inflight.get(exactKey);
    if (!entry) return;
    inflight.delete(exactKey);
    clearTimeout(entry.timer);
    entry.settle();
  }
  async function waitFor(exactKey: string, signal: AbortSignal | undefined): Promise<boolean> {
    const entry = inflight.get(exactKey);
    if (!entry) return false;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    await Promise.race([
      entry.done,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, settings.coalesceMs);
      }),
      new Promise<void>((resolve) => {
        onAbort = resolve;
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    if (signal?.aborted) throw new CompactorError('aborted', 'the operation was aborted', { cause: signal.reason });
    return true;
  }

  const pending = new Set<Promise<boolean>>();
  function track(work: Promise<boolean>): Promise<boolean> {
    pending.add(work);
    void work.finally(() => pending.delete(work)).catch(() => undefined);
    return work;
  }

  return {
    store,
    embedder,
    embeddings,
    verifier,
    ticket: (request, lookup = {}) => ticketOf(request, lookup),
    stats: () => structuredClone(stats),
    async probe(request, lookup = {}) {
      const made = ticketOf(request, lookup);
      if (typeof made === 'string') return undefined;
      const ticket = withGeneration(made, await generationOf(lookup.tenant));
      const exact = await exactEntry(ticket.exactKey);
      if (exact && FORMATS[exact.response.format].replayable(exact.response, ticket.streamed))
        return { layer: 'exact', score: 1, cosine: 1, question: exact.question, response: exact.response };
      if (!ticket.namespace || !ticket.question || !embedder) return undefined;
      const [vector] = (await embeddings.embed(embedder, [ticket.question], { signal: lookup.signal })) as [Float32Array];
      const best = await nearest(ticket.namespace, ticket.question, vector, ticket.streamed);
      return best ? { layer: 'semantic', ...best } : undefined;
    },
    async lookup(request, lookup = {}) {
      await prepareDigests(request.messages);
      const made = ticketOf(request, lookup);
      if (typeof made === 'string') return bypass(made);
      let ticket: CacheTicket;
      try {
        ticket = withGeneration(made, await generationOf(lookup.tenant));
      } catch (error) {
        if (isAbortError(error)) throw error;
        fail('store');
        return bypass('store-failed', (error as Error).message);
      }
      // A caller that may not be served from the cache yet: its answer may still be stored.
      if (lookup.writeOnly) {
        stats.misses++;
        return { status: 'miss', ticket, writeOnly: true };
      }
      // Exact layer (again after waiting for an identical request in flight).
      let coalesced = false;
      for (;;) {
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
        // The first miss of a key claims it at once (no await in between), so identical requests
        // arriving meanwhile wait for its answer instead of going upstream too.
        if (coalesced || !inflight.has(ticket.exactKey)) {
          claim(ticket.exactKey);
          break;
        }
        await waitFor(ticket.exactKey, lookup.signal);
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
          releaseKey(ticket.exactKey);
          throw error;
        }
        fail('embedder');
        return miss({ failure: (error as Error).message });
      }
      ticket = { ...ticket, vector };
      try {
        const best = await nearest(ticket.namespace!, ticket.question!, vector, ticket.streamed);
        if (best && best.score >= thresholdFor(lookup.route)) {
          releaseKey(ticket.exactKey);
          stats.hits.semantic++;
          return { status: 'hit', layer: 'semantic', response: best.response, score: best.score, cosine: best.cosine, matched: best.question };
        }
      } catch (error) {
        releaseKey(ticket.exactKey);
        if (isAbortError(error)) throw error;
        fail('store');
        return bypass('store-failed', (error as Error).message);
      }
      return miss();
    },
    release(ticket) {
      releaseKey(ticket.exactKey);
    },
    async purge({ tenant }) {
      if (typeof tenant !== 'string') invalidOption('tenant', 'a string', tenant);
      const value = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}`;
      const key = generationKey(tenant);
      await store.set(key, value);
      generations.set(key, { value, at: Date.now() });
    },
    async idle() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
    commit(ticket, response) {
      const work = track(storeAnswer(ticket, response));
      // Waiters read the exact layer once the entry is there (or go ahead on a failed store).
      void work.finally(() => releaseKey(ticket.exactKey)).catch(() => undefined);
      return work;
    },
  };
}

/**
 * Questions that no score should let answer each other: one negated and the other not, other
 * numbers, other names, or the same things related the other way round ("raw eggs safe" / "raw
 * eggs not safe"; "in 2020" / "in 2021"; "founded Apple" / "founded Microsoft"; "miles to km" /
 * "km to miles").
 */
export function conflict(a: TextProfile, b: TextProfile): boolean {
  if (a.negations > 0 !== b.negations > 0) return true;
  if (!sameSet(a.numbers, b.numbers)) return true;
  if (reversed(a, b)) return true;
  // A name one question mentions and the other does not, in any case ("Quora" and "quora" agree).
  return namedOnlyIn(a, b) || namedOnlyIn(b, a);
}

function namedOnlyIn(a: TextProfile, b: TextProfile): boolean {
  if (a.names.size === 0) return false;
  const words = new Set(b.words);
  for (const name of a.names) if (!b.names.has(name) && !words.has(name)) return true;
  return false;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const item of a) if (!b.has(item)) return false;
  return true;
}
