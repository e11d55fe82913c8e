import { LARGE_BODY_BYTES, nextTurn } from '../core/turns.js';
import { createCompactor, type Compactor } from '../compose/compactor.js';
import { COMPACTOR_DEFAULTS, type CompactorOptions } from '../compose/options.js';
import type { CompactOptions } from '../compose/types.js';
import { CompactorError } from '../core/errors.js';
import { type Rule, rules } from '../core/define-options.js';
import { isRouteTable, type RouteTable } from '../compose/routes.js';
import type { CompactionStats } from '../core/stats.js';
import { resolveFormat } from '../formats/registry.js';
import type { CachedResponse, FormatName, Replay, WireFormat } from '../formats/wire-format.js';
import { goAhead, settlesWithin } from './ahead.js';
import { checkDepth, readJsonText } from './body.js';
import { bypassRequested, compactionHeaders, compactionOffRequested, shadowRequested } from './headers.js';
import { type Recorder, recordOf, recorded } from './recorder.js';
import { asCompactorError, errorReply, freshReplay, type Reply, replyOf } from './reply.js';

export { checkDepth, MAX_JSON_DEPTH, readBody, readJson } from './body.js';
export type { Recorder } from './recorder.js';
export { bypassRequested, compactionHeaders, compactionOffRequested, shadowRequested } from './headers.js';
export { asCompactorError, errorReply, freshReplay, type Reply, replyOf } from './reply.js';

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
   * Wire format of the requests. `auto` tells Anthropic Messages and OpenAI Responses bodies from chat completions.
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
  format: rules.oneOf('auto', 'openai', 'anthropic', 'responses'),
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

/** Where a request is in the flow, and what it needs to go on. */
export interface ExchangeOptions {
  compactor: Compactor | RouteTable;
  format: 'auto' | FormatName;
  route: string | undefined;
  /** The tenant, or a function of the parsed body that gives it (the proxy divides a caller's scope by the body's `user`). */
  tenant: string | undefined | ((body: object) => string | undefined);
  /**
   * `write-only` when the caller may not be answered from the cache yet (its answer can still be
   * stored). A bypass header makes it `none`.
   * @default 'read-write'
   */
  cacheAccess?: 'read-write' | 'write-only';
  signal?: AbortSignal | undefined;
  /** Add provider cache hints (see `CompactOptions.cacheHints`). @default the compactor's setting */
  cacheHints?: boolean;
  /** Reads a request header (for the cache-bypass headers). */
  header: (name: string) => string | null | undefined;
  /** Add the `x-compactor-*` headers. */
  headers: boolean;
  /** Forward the request uncompacted (a proxy key's `skipCompaction`); `x-compactor-compact: off` does it per request. @default false */
  skipCompaction?: boolean;
  /** `shadow` for a proxy key's `mode`; `x-compactor-mode: shadow` asks for it per request. @default the compactor's mode */
  mode?: 'enforce' | 'shadow';
  /** Wall clock of a replayed answer's `created`, in milliseconds. @default Date.now */
  clock?: () => number;
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
  /**
   * Present when a shadow request went on before its compaction ended (`shadowWaitMs`): `stats`
   * are provisional (`stats.shadow.pending`) and this resolves to them, filled in, when it ends.
   */
  settled?: Promise<CompactionStats>;
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
  const compactOptions: CompactOptions = {
    signal: options.signal,
    route: options.route,
    tenant: typeof options.tenant === 'function' ? options.tenant(body) : options.tenant,
    format: format.name,
    cacheAccess: bypassRequested(options.header) ? 'none' : (options.cacheAccess ?? 'read-write'),
    skipCompaction: options.skipCompaction === true || compactionOffRequested(options.header),
    ...(shadowRequested(options.header) ? { mode: 'shadow' as const } : options.mode === undefined ? {} : { mode: options.mode }),
    ...(options.cacheHints === undefined ? {} : { cacheHints: options.cacheHints }),
  };
  const compacting = compactor.compact(body, compactOptions);
  // Shadow mode sends the request as it came: it waits a bounded time for the figures, no more.
  if ((compactOptions.mode ?? compactor.options?.mode) === 'shadow') {
    const inTime = await settlesWithin(compacting, compactor.options?.shadowWaitMs ?? COMPACTOR_DEFAULTS.shadowWaitMs);
    if (!inTime) return goAhead(format, body, compacting, options.headers === true);
  }
  const result = await compacting;
  const headers = options.headers ? compactionHeaders(result.stats) : {};
  if (result.kind === 'cached')
    return {
      kind: 'cached',
      format,
      stats: result.stats,
      replay: result.replay,
      reply: replyOf(freshReplay(result.replay, (options.clock ?? Date.now)()), headers),
    };
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
    record: recordOf(format.name, commit, release),
  };
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
      /** A shadow request sent before its compaction ended: `stats` are filled in when this resolves. */
      settled?: Promise<CompactionStats>;
    };

export interface ExchangeInput extends ExchangeOptions {
  body: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string> | null | undefined;
  /** The body already parsed by the adapter (then `body` is not read), and its text (shadow mode forwards it). */
  parsed?: object;
  text?: string;
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
    const read = input.parsed ? undefined : await readJsonText(input.body, input.maxBodyBytes, input.contentLength);
    const body = input.parsed ?? read!.body;
    // A large body took tens of milliseconds to parse: let other requests in before compacting it.
    if (input.contentLength === null || input.contentLength === undefined || input.contentLength > LARGE_BODY_BYTES) await nextTurn();
    prepared = await prepare(body, input);
    if (prepared.kind === 'cached') return { kind: 'reply', reply: prepared.reply, replay: prepared.replay, stats: prepared.stats };
    let upstream: U;
    try {
      // Shadow: the bytes go as they came.
      const shadow = prepared.stats.passThrough === 'shadow';
      const text = read?.text ?? input.text;
      upstream = await forward(shadow && text !== undefined ? text : JSON.stringify(prepared.request), prepared);
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
      ...(prepared.settled ? { settled: prepared.settled } : {}),
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
