import { createCompactor, type CompactionStats, type Compactor, type CompactOptions, type CompactorOptions } from '../compactor.js';
import { isRouteTable, type RouteTable } from '../routes.js';
import type { CachedResponse } from '../cache/response-cache.js';
import { replay } from '../cache/response-cache.js';
import { encodeSse } from '../cache/sse.js';
import { bypassRequested, compactionHeaders, responseCollector, selectCompactor, toErrorBody } from './shared.js';

// Structural types, so the adapter needs neither express nor @types/express at run time.
interface ExpressRequest {
  method: string;
  get?(name: string): string | undefined;
  body?: unknown;
  path?: string;
  baseUrl?: string;
  originalUrl?: string;
}
interface ExpressResponse {
  locals: Record<string, unknown>;
  writableEnded?: boolean;
  headersSent?: boolean;
  on(event: 'close', listener: () => void): unknown;
  status(code: number): ExpressResponse;
  json(body: unknown): unknown;
  setHeader?(name: string, value: string): unknown;
  getHeader?(name: string): unknown;
  statusCode?: number;
  write?(chunk: unknown, ...rest: unknown[]): boolean;
  end?(...rest: unknown[]): unknown;
}
type Next = (error?: unknown) => void;

export interface ExpressCompactionOptions<Req extends ExpressRequest = ExpressRequest> {
  /** Resolve the tenant of a request (a header, an API-key hash, a user id). */
  tenant?: (request: Req) => string | undefined;
  /**
   * The route name used to pick from a route table and passed to strategies.
   * @default request.baseUrl + request.path
   */
  route?: (request: Req) => string;
  /** @default 'auto' */
  format?: CompactOptions['format'];
  /**
   * Set `x-compactor-tokens-before` / `-after` / `-strategy` / `-cache` response headers.
   * @default false
   */
  headers?: boolean;
  /**
   * On a cache hit, answer the request from the cache (JSON, or SSE when the body asked to
   * stream). When false, the hit is put on `res.locals.cachedResponse` and `next()` runs, for
   * handlers that want to answer themselves.
   * @default true
   */
  respondFromCache?: boolean;
}

/**
 * Express middleware: mount after `express.json()`. It replaces `req.body` with the compacted
 * request, puts the stats on `res.locals.compaction`, and reports errors only through `next(err)`.
 *
 * @example
 * app.post('/v1/chat/completions', express.json(), compaction({ maxInputTokens: 4000 }), handler)
 * app.use(compactionErrorHandler())
 */
export function compaction<Req extends ExpressRequest = ExpressRequest>(
  source: Compactor | RouteTable | CompactorOptions,
  options: ExpressCompactionOptions<Req> = {},
): (request: Req, response: ExpressResponse, next: Next) => void {
  const target: Compactor | RouteTable =
    isRouteTable(source) || typeof (source as Compactor).compact === 'function' ? (source as Compactor | RouteTable) : createCompactor(source as CompactorOptions);
  return (request, response, next) => {
    if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') {
      next();
      return;
    }
    const route = options.route ? options.route(request) : `${request.baseUrl ?? ''}${request.path ?? ''}`;
    const controller = new AbortController();
    const onClose = (): void => {
      if (!response.writableEnded) controller.abort();
    };
    response.on('close', onClose);
    let compactor: Compactor;
    try {
      compactor = selectCompactor(target, route, request.body);
    } catch (error) {
      next(error);
      return;
    }
    const tenant = options.tenant?.(request);
    const streamRequested = (request.body as { stream?: unknown } | null)?.stream === true;
    const bypassCache = request.get ? bypassRequested((name) => request.get!(name)) : false;
    compactor
      .compact((request.body ?? undefined) as object, { signal: controller.signal, route, tenant, format: options.format ?? 'auto', bypassCache })
      .then(
        ({ request: compacted, stats, cache }) => {
          request.body = compacted;
          response.locals.compaction = stats;
          if (options.headers && response.setHeader && !response.headersSent) {
            for (const [name, value] of Object.entries(compactionHeaders(stats))) response.setHeader(name, value);
          }
          if (cache?.status === 'hit' && cache.response) {
            const answer = replay(cache.response, streamRequested);
            if (options.respondFromCache === false || !response.setHeader || !response.end) {
              response.locals.cachedResponse = answer;
              next();
              return;
            }
            if (answer.kind === 'json') {
              response.status(200).json(answer.body);
              return;
            }
            response.status(200);
            response.setHeader('content-type', 'text/event-stream; charset=utf-8');
            response.setHeader('cache-control', 'no-cache');
            response.end(encodeSse(answer.events));
            return;
          }
          if (cache?.status === 'miss') captureForCache(response, stats.format, (stored) => void cache.commit(stored).catch(() => undefined));
          next();
        },
        (error: unknown) => next(error),
      );
  };
}

/**
 * Watch what the handler sends: `res.json(body)`, or an SSE stream written with `res.write` and
 * closed with `res.end`. A 200 that completes is handed to `store`.
 */
function captureForCache(response: ExpressResponse, format: 'openai' | 'anthropic', store: (stored: CachedResponse) => void): void {
  const json = response.json.bind(response);
  let collector: ReturnType<typeof responseCollector> | undefined;
  let viaJson = false;
  response.json = (body: unknown) => {
    viaJson = true;
    if ((response.statusCode ?? 200) === 200) store({ format, body });
    return json(body);
  };
  const write = response.write?.bind(response);
  const end = response.end?.bind(response);
  if (!write || !end) return;
  const observe = (chunk: unknown): void => {
    if (viaJson) return;
    if (!collector) {
      const type = String(response.getHeader?.('content-type') ?? '');
      if (!type.includes('text/event-stream')) return;
      collector = responseCollector(type, format);
    }
    if (typeof chunk === 'string' || chunk instanceof Uint8Array) collector.push(chunk);
  };
  response.write = (chunk: unknown, ...rest: unknown[]) => {
    observe(chunk);
    return write(chunk, ...rest);
  };
  response.end = (...rest: unknown[]) => {
    if (rest.length > 0 && typeof rest[0] !== 'function') observe(rest[0]);
    if (collector && (response.statusCode ?? 200) === 200) {
      const stored = collector.finish();
      if (stored) store(stored);
    }
    return end(...rest);
  };
}

/**
 * Error handler rendering OpenAI-style error JSON for compactor errors and body-parser errors.
 * Other errors become a 500 with no detail.
 *
 * @example
 * app.use(compactionErrorHandler())
 */
export function compactionErrorHandler(): (error: unknown, request: ExpressRequest, response: ExpressResponse, next: Next) => void {
  return (error, _request, response, next) => {
    if (response.headersSent) {
      next(error);
      return;
    }
    const { status, body } = toErrorBody(error);
    response.status(status).json(body);
  };
}
