import { isUtf8 } from 'node:buffer';
import { LARGE_BODY_BYTES, nextTurn } from '../core/turns.js';
import { createCompactor, type Compactor } from '../compose/compactor.js';
import { CompactorError } from '../core/errors.js';
import { type Rule, rules } from '../core/define-options.js';
import type { CompactorOptions } from '../compose/options.js';
import { isRouteTable, type RouteTable } from '../compose/routes.js';
import type { CompactionStats } from '../core/stats.js';
import { FORMATS, resolveFormat } from '../formats/registry.js';
import { encodeSse, sseCollector } from '../formats/sse.js';
import type { CachedResponse, FormatName, Replay, WireFormat } from '../formats/wire-format.js';

/**
 * The one request flow every adapter shares: read → validate → compact → answer from the cache or
 * forward → store. Express, fetch, the AI SDK middleware and the proxy are thin shells over it; the
 * wire format (OpenAI chat, Anthropic messages) owns conversion, completeness, replay and error
 * bodies.
 */

/** Where an adapter's compactor comes from: a compactor, a route table, or options to build one. */
export type CompactorSource = Compactor | RouteTable | CompactorOptions;

/** Options every adapter takes, under the same names and with the same defaults. */
export interface AdapterOptions<Req> {
  /**
   * The tenant of a request: it scopes the response cache. Derive it from something the server
   * has authenticated (a session, a verified token), never from a header the client sets freely.
   * @default undefined (no tenant)
   */
  tenant?: (request: Req) => string | undefined;
  /**
   * The route of a request: picks a rule from a route table, and scopes the cache.
   * @default the request's path
   */
  route?: (request: Req) => string;
  /**
   * Wire format of the requests. `auto` tells Anthropic Messages bodies from OpenAI ones.
   * @default 'auto'
   */
  format?: 'auto' | FormatName;
  /**
   * Add `x-compactor-tokens-before`, `-tokens-after`, `-strategy` and `-cache` to the response.
   * @default false
   */
  headers?: boolean;
}

/** The rules of the options every adapter takes. */
export const ADAPTER_RULES = {
  tenant: rules.function,
  route: rules.function,
  format: rules.oneOf('auto', 'openai', 'anthropic'),
  headers: rules.boolean,
} satisfies Record<keyof Required<AdapterOptions<unknown>>, Rule>;

/** The compactor or route table behind an adapter. */
export function compactorOf(source: CompactorSource): Compactor | RouteTable {
  if (isRouteTable(source) || typeof (source as Compactor).compact === 'function') return source as Compactor | RouteTable;
  return createCompactor(source as CompactorOptions);
}

/** Methods whose requests carry no body to compact. */
export function hasNoBody(method: string | undefined): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}

/** True when the caller asked not to be served from a cache: `Cache-Control: no-cache`/`no-store`, or `x-compactor-cache: bypass`. */
export function bypassRequested(header: (name: string) => string | null | undefined): boolean {
  const control = (header('cache-control') ?? '').toLowerCase();
  if (/(^|[\s,])no-(cache|store)($|[\s,=])/.test(control)) return true;
  return (header('x-compactor-cache') ?? '').trim().toLowerCase() === 'bypass';
}

/** The `x-compactor-*` response headers for a compaction. */
export function compactionHeaders(stats: CompactionStats): Record<string, string> {
  const headers: Record<string, string> = {
    'x-compactor-tokens-before': String(stats.tokensBefore),
    'x-compactor-tokens-after': String(stats.tokensAfter),
    'x-compactor-strategy': stats.strategies.map((step) => step.name).join(',') || 'none',
  };
  if (stats.cache) headers['x-compactor-cache'] = stats.cache.status;
  return headers;
}

/** Any error as a CompactorError: body-parser's errors keep their meaning, anything unknown is `internal`. */
export function asCompactorError(error: unknown): CompactorError {
  if (CompactorError.isInstance(error)) return error;
  const parserType = (error as { type?: unknown } | null)?.type;
  if (parserType === 'entity.too.large') return new CompactorError('input.too-large', 'body: request body is too large', { pointer: 'body', cause: error });
  if (parserType === 'entity.parse.failed') return new CompactorError('input.invalid', 'body: is not valid JSON', { pointer: 'body', cause: error });
  return new CompactorError('internal', error instanceof Error ? error.message : String(error), { cause: error });
}

/** A complete answer the adapter sends as is: a cached reply or an error. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const JSON_TYPE = 'application/json';
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };

/**
 * A cached answer as this request's own: a new `id`, `created` now, and a `usage` of zeros, since
 * nothing reached the model (`x-compactor-cache: hit` says where it came from). Streams get the
 * same in every chunk.
 */
export function freshReplay(replay: Replay, now: number): Replay {
  const suffix = `cached${now.toString(36)}${Math.random().toString(36).slice(2, 10)}`;
  const zero = (usage: unknown): unknown => {
    if (typeof usage === 'number') return 0;
    if (typeof usage !== 'object' || usage === null || Array.isArray(usage)) return usage;
    return Object.fromEntries(Object.entries(usage).map(([key, value]) => [key, zero(value)]));
  };
  const fresh = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    if (typeof copy.id === 'string') copy.id = `${/^[a-z]+[-_]/i.exec(copy.id)?.[0] ?? ''}${suffix}`;
    if (typeof copy.created === 'number') copy.created = Math.floor(now / 1000);
    if (copy.usage !== undefined && copy.usage !== null) copy.usage = zero(copy.usage);
    // Anthropic's stream opens with the message itself.
    if (typeof copy.message === 'object' && copy.message !== null) copy.message = fresh(copy.message);
    return copy;
  };
  if (replay.kind === 'json') return { kind: 'json', body: fresh(replay.body) };
  return {
    kind: 'sse',
    events: replay.events.map((event) => {
      if (event.data.trim() === '[DONE]') return event;
      try {
        return { ...event, data: JSON.stringify(fresh(JSON.parse(event.data))) };
      } catch {
        return event;
      }
    }),
  };
}

/** A replay as bytes on the wire. */
export function replyOf(replay: Replay, headers: Record<string, string> = {}): Reply {
  if (replay.kind === 'sse') return { status: 200, headers: { ...headers, ...SSE_HEADERS }, body: encodeSse(replay.events) };
  return { status: 200, headers: { ...headers, 'content-type': JSON_TYPE }, body: JSON.stringify(replay.body) };
}

/** An error in the caller's wire format (OpenAI's when the format is not known yet). */
export function errorReply(error: unknown, format: FormatName | undefined, headers: Record<string, string> = {}): Reply {
  const failure = asCompactorError(error);
  const body = FORMATS[format ?? 'openai'].errorBody(failure);
  return { status: failure.status, headers: { ...headers, 'content-type': JSON_TYPE }, body: JSON.stringify(body) };
}

/** Collects a response (JSON or SSE) as it is relayed, up to a byte bound, for the cache. */
export interface Recorder {
  push(chunk: Uint8Array | string): void;
  /** The response is complete: store it if the cache takes it. */
  end(): void;
  /** The response was cut short: store nothing, and let identical requests waiting on it go ahead. */
  abandon(): void;
}

/** Largest response body collected for the cache. The cache applies its own, smaller, bound on what it stores. */
const MAX_RECORDED_BYTES = 8 * 1024 * 1024;

function recorder(
  format: FormatName,
  contentType: string | null | undefined,
  commit: (response: CachedResponse) => Promise<boolean>,
  release: () => void,
): Recorder {
  const sse = (contentType ?? '').includes('text/event-stream') ? sseCollector() : undefined;
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  let overflow = false;
  let ended = false;
  return {
    push(chunk) {
      if (overflow) return;
      size += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
      if (size > MAX_RECORDED_BYTES) {
        overflow = true;
        return;
      }
      const piece = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      if (sse) sse.push(piece);
      else text += piece;
    },
    abandon() {
      ended = true;
      release();
    },
    end() {
      if (ended) return;
      ended = true;
      if (overflow) {
        release();
        return;
      }
      let response: CachedResponse;
      if (sse) response = { format, events: sse.events };
      else {
        try {
          response = { format, body: JSON.parse(text + decoder.decode()) };
        } catch {
          release();
          return;
        }
      }
      // A failed store is counted by the cache; the caller already has its answer.
      void commit(response).catch(() => undefined);
    },
  };
}

/** Where a request is in the flow, and what it needs to go on. */
export interface ExchangeOptions {
  compactor: Compactor | RouteTable;
  format: 'auto' | FormatName;
  route: string | undefined;
  /** The tenant, or a function of the parsed body that gives it (the proxy divides a caller's scope by the body's `user`). */
  tenant: string | undefined | ((body: object) => string | undefined);
  /** False when the caller may not be answered from the cache yet (its answer can still be stored). @default true */
  serveFromCache?: boolean;
  signal?: AbortSignal | undefined;
  /** Add provider cache hints (see `CompactOptions.cacheHints`). @default the compactor's setting */
  cacheHints?: boolean;
  /** Reads a request header (for the cache-bypass headers). */
  header: (name: string) => string | null | undefined;
  /** Add the `x-compactor-*` headers. */
  headers: boolean;
}

/** The request, answered from the cache. */
export interface PreparedCached {
  kind: 'cached';
  format: WireFormat;
  stats: CompactionStats;
  /** The answer in the form the request asked for, as bytes on the wire, with a fresh id and zero usage (`freshReplay`). */
  reply: Reply;
  /** The answer as stored, as a value (for adapters that do not speak the wire, and for metrics that read its usage). */
  replay: Replay;
}

/** The request, compacted and ready to forward. */
export interface PreparedForward {
  kind: 'forward';
  format: WireFormat;
  stats: CompactionStats;
  /** The compacted body, in the request's own wire shape. */
  request: object;
  /** The `x-compactor-*` headers (empty unless asked for). */
  headers: Record<string, string>;
  /** Store a completed answer given as a value; present when the cache missed. */
  commit?: (response: CachedResponse) => Promise<boolean>;
  /**
   * The request ended without an answer to store (the model failed, the client left): identical
   * requests waiting on this one go ahead. A no-op after `commit`, and when nothing missed.
   */
  release(): void;
  /** Record an answer as it is relayed; undefined when it cannot be cached (no miss to fill, not a 200). */
  record(status: number, contentType: string | null | undefined): Recorder | undefined;
}

export type Prepared = PreparedCached | PreparedForward;

/** Deepest nesting of arrays and objects a request body may have (tool schemas included). */
export const MAX_JSON_DEPTH = 64;

/**
 * Refuse a body nested deeper than `MAX_JSON_DEPTH` (a 5,000-deep `response_format` would
 * otherwise overflow the stack of whatever walks it), naming the field where it goes too deep.
 * Iterative, so the check itself cannot overflow.
 */
export function checkDepth(body: unknown, limit = MAX_JSON_DEPTH): void {
  const stack: [unknown, number, string][] = [[body, 1, 'body']];
  while (stack.length > 0) {
    const [value, depth, at] = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > limit) {
      const shown = at.length > 120 ? `${at.slice(0, 120)}…` : at;
      throw new CompactorError('input.invalid', `${shown}: nested more than ${limit} deep`, { pointer: at });
    }
    if (Array.isArray(value)) {
      for (let index = 0; index < value.length; index++) stack.push([value[index], depth + 1, `${at}[${index}]`]);
    } else for (const [key, item] of Object.entries(value)) if (typeof item === 'object' && item !== null) stack.push([item, depth + 1, `${at}.${key}`]);
  }
}

/** Validate and compact a parsed body, and look it up in the cache. Errors are thrown (adapters render them). */
export async function prepare(body: unknown, options: ExchangeOptions): Promise<Prepared> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new CompactorError('input.invalid', 'body: must be a JSON object', { pointer: 'body' });
  checkDepth(body);
  const format = resolveFormat(options.format, body);
  let compactor: Compactor;
  if (isRouteTable(options.compactor)) {
    const model = (body as { model?: unknown }).model;
    compactor = options.compactor.select({ path: options.route, model: typeof model === 'string' ? model : undefined });
  } else compactor = options.compactor;
  const result = await compactor.compact(body, {
    signal: options.signal,
    route: options.route,
    tenant: typeof options.tenant === 'function' ? options.tenant(body) : options.tenant,
    format: format.name,
    bypassCache: bypassRequested(options.header),
    serveFromCache: options.serveFromCache !== false,
    ...(options.cacheHints === undefined ? {} : { cacheHints: options.cacheHints }),
  });
  const headers = options.headers ? compactionHeaders(result.stats) : {};
  if (result.kind === 'cached')
    return { kind: 'cached', format, stats: result.stats, replay: result.reply, reply: replyOf(freshReplay(result.reply, Date.now()), headers) };
  const commit = result.commit;
  const release = result.release ?? (() => undefined);
  return {
    kind: 'forward',
    format,
    stats: result.stats,
    request: result.request,
    headers,
    ...(commit ? { commit } : {}),
    release,
    // Only complete 200s are offered to the cache; the format decides whether the body is a finished answer.
    record(status, contentType) {
      if (commit && status === 200) return recorder(format.name, contentType, commit, release);
      release();
      return undefined;
    },
  };
}

/** Read a body's bytes from its chunks, up to `limit` bytes (413 `input.too-large` past it, or at once when its declared length is). */
export async function readBody(
  chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | null | undefined,
  limit: number,
  declaredLength?: number | null,
): Promise<Buffer> {
  if (declaredLength !== undefined && declaredLength !== null && Number.isFinite(declaredLength) && declaredLength > limit) {
    throw new CompactorError('input.too-large', `body: ${declaredLength} bytes is over the limit of ${limit}`, { pointer: 'body' });
  }
  const parts: Buffer[] = [];
  let size = 0;
  if (chunks) {
    for await (const chunk of chunks) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      size += bytes.byteLength;
      if (size > limit) throw new CompactorError('input.too-large', `body: over the limit of ${limit} bytes`, { pointer: 'body' });
      parts.push(bytes);
    }
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
}

/** Read a JSON body from its chunks, up to `limit` bytes. */
export async function readJson(
  chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | null | undefined,
  limit: number,
  declaredLength?: number | null,
): Promise<unknown> {
  const bytes = await readBody(chunks, limit, declaredLength);
  const size = bytes.byteLength;
  // Invalid UTF-8 is refused, not replaced with U+FFFD and sent on as if the caller had written it.
  if (!isUtf8(bytes)) throw new CompactorError('input.invalid', 'body: is not valid UTF-8', { pointer: 'body' });
  const text = bytes.toString('utf8');
  // Decoding and parsing megabytes are two long steps: other requests get a turn between them.
  if (size > LARGE_BODY_BYTES) await nextTurn();
  try {
    return JSON.parse(text);
  } catch {
    throw new CompactorError('input.invalid', 'body: is not valid JSON', { pointer: 'body' });
  }
}

/** What the upstream (a handler, or a model API) answered. */
export interface Upstream {
  status: number;
  contentType: string | null | undefined;
  body: AsyncIterable<Uint8Array> | null;
}

/** The outcome of a whole exchange. */
export type ExchangeResult<U extends Upstream> =
  | {
      kind: 'reply';
      reply: Reply;
      stats?: CompactionStats;
      /** For a cache hit: the answer as a value (for metrics that read its usage). */
      replay?: Replay;
      /** For an error: what went wrong (for logs and metrics). */
      error?: CompactorError;
    }
  | {
      kind: 'forwarded';
      upstream: U;
      /** The `x-compactor-*` headers to add to the upstream's. */
      headers: Record<string, string>;
      /** The upstream's body, recorded for the cache as it is read. Read it to the end, or stop reading to stop it. */
      body: AsyncIterable<Uint8Array> | null;
      stats: CompactionStats;
    };

async function* recorded(body: AsyncIterable<Uint8Array>, sink: Recorder): AsyncIterable<Uint8Array> {
  let complete = false;
  try {
    for await (const chunk of body) {
      sink.push(chunk);
      yield chunk;
    }
    complete = true;
    sink.end();
  } finally {
    // A stream cut short (or a reader that stopped) is never stored.
    if (!complete) sink.abandon();
  }
}

export interface ExchangeInput extends ExchangeOptions {
  body: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | null | undefined;
  /** The body already parsed by the adapter (then `body` is not read). */
  parsed?: object;
  /** The request's declared `content-length`, checked before reading. */
  contentLength?: number | null;
  maxBodyBytes: number;
}

/**
 * The whole flow for adapters that own the request's bytes (fetch, the proxy): read, compact,
 * answer from the cache or call `forward` with the compacted body, and record the answer for the
 * cache as the adapter relays it. Errors become a reply in the request's wire format, with the
 * error attached for logs and metrics.
 */
export async function exchange<U extends Upstream>(
  input: ExchangeInput,
  forward: (body: string, prepared: PreparedForward) => Promise<U>,
): Promise<ExchangeResult<U>> {
  let prepared: Prepared | undefined;
  try {
    const body = input.parsed ?? (await readJson(input.body, input.maxBodyBytes, input.contentLength));
    // A large body took tens of milliseconds to parse: let other requests in before compacting it.
    if (input.contentLength === null || input.contentLength === undefined || input.contentLength > LARGE_BODY_BYTES) await nextTurn();
    prepared = await prepare(body, input);
    if (prepared.kind === 'cached') return { kind: 'reply', reply: prepared.reply, replay: prepared.replay, stats: prepared.stats };
    let upstream: U;
    try {
      upstream = await forward(JSON.stringify(prepared.request), prepared);
    } catch (error) {
      prepared.release();
      throw error;
    }
    const sink = prepared.record(upstream.status, upstream.contentType);
    if (sink && !upstream.body) sink.abandon();
    return {
      kind: 'forwarded',
      upstream,
      headers: prepared.headers,
      body: sink && upstream.body ? recorded(upstream.body, sink) : upstream.body,
      stats: prepared.stats,
    };
  } catch (error) {
    const failure = asCompactorError(error);
    const format = prepared?.format.name ?? (input.format === 'auto' ? undefined : input.format);
    const headers = prepared?.kind === 'forward' ? prepared.headers : {};
    const result: ExchangeResult<U> = { kind: 'reply', reply: errorReply(failure, format, headers), error: failure };
    if (prepared) result.stats = prepared.stats;
    return result;
  }
}
