import { defineOptions, rules } from '../core/define-options.js';
import { CompactorError } from '../core/errors.js';
import type { FormatName } from '../core/types.js';
import {
  ADAPTER_RULES,
  compactorOf,
  errorReply,
  hasNoBody,
  prepare,
  type AdapterOptions,
  type CompactorSource,
  type PreparedForward,
  type Reply,
} from './exchange.js';

// Structural types, so the adapter needs neither express nor @types/express at run time.
interface ExpressRequest {
  method: string;
  get?(name: string): string | undefined;
  body?: unknown;
  path?: string;
  baseUrl?: string;
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

export interface ExpressCompactionOptions<Req extends ExpressRequest = ExpressRequest> extends AdapterOptions<Req> {
  /**
   * Leave cache hits to the handler: the hit is put on `res.locals.cachedReply` (`{ status, headers,
   * body }`) and `next()` runs, instead of the middleware answering.
   * @default false
   */
  deferCacheHits?: boolean;
}

export const EXPRESS_DEFAULTS = { format: 'auto' as const, headers: false, deferCacheHits: false };

export const EXPRESS_OPTIONS = defineOptions<ExpressCompactionOptions, typeof EXPRESS_DEFAULTS>({
  factory: 'express compaction',
  defaults: EXPRESS_DEFAULTS,
  rules: { ...ADAPTER_RULES, deferCacheHits: rules.boolean },
  docs: [
    ['src/adapters/express.ts', 'ExpressCompactionOptions'],
    ['src/adapters/exchange.ts', 'AdapterOptions'],
  ],
});

function send(response: ExpressResponse, reply: Reply): void {
  response.status(reply.status);
  for (const [name, value] of Object.entries(reply.headers)) response.setHeader?.(name, value);
  response.end?.(reply.body);
}

/**
 * Express middleware: mount after `express.json()`. It replaces `req.body` with the compacted
 * request and puts the stats on `res.locals.compaction`; a cache hit is answered here; an answer
 * the handler sends (`res.json`, or an SSE stream written with `res.write`/`res.end`) is stored.
 * Errors only go through `next(err)`.
 *
 * @example
 * app.post('/v1/chat/completions', express.json(), compaction({ maxInputTokens: 4000 }), handler)
 * app.use(compactionErrorHandler())
 */
export function compaction<Req extends ExpressRequest = ExpressRequest>(
  source: CompactorSource,
  options: ExpressCompactionOptions<Req> = {},
): (request: Req, response: ExpressResponse, next: Next) => void {
  const settings = EXPRESS_OPTIONS.parse(options as ExpressCompactionOptions) as typeof EXPRESS_DEFAULTS & ExpressCompactionOptions<Req>;
  const compactor = compactorOf(source);
  return (request, response, next) => {
    if (hasNoBody(request.method)) {
      next();
      return;
    }
    // No body parser ran before this middleware (body-parser defines `req.body` even when it skips
    // a request): a wiring mistake of the server, not the client's.
    if (!('body' in request)) {
      next(
        new CompactorError('options.invalid', 'req.body is undefined: mount express.json() (or another JSON body parser) before compaction()', {
          pointer: 'express.json()',
        }),
      );
      return;
    }
    const controller = new AbortController();
    response.on('close', () => {
      if (!response.writableEnded) controller.abort();
    });
    prepare(request.body, {
      compactor,
      format: settings.format,
      route: settings.route ? settings.route(request) : `${request.baseUrl ?? ''}${request.path ?? ''}`,
      tenant: settings.tenant?.(request),
      signal: controller.signal,
      header: (name) => request.get?.(name),
      headers: settings.headers,
    }).then((prepared) => {
      response.locals.compaction = prepared.stats;
      if (prepared.kind === 'cached') {
        if (settings.deferCacheHits || !response.setHeader || !response.end) {
          response.locals.cachedReply = prepared.reply;
          next();
        } else send(response, prepared.reply);
        return;
      }
      if (!response.headersSent) for (const [name, value] of Object.entries(prepared.headers)) response.setHeader?.(name, value);
      request.body = prepared.request;
      if (prepared.commit) record(response, prepared);
      next();
    }, next);
  };
}

/**
 * Watch what the handler sends: `res.json(body)`, or an SSE stream written with `res.write` and
 * closed with `res.end`, and hand a complete 200 to the cache.
 */
function record(response: ExpressResponse, prepared: PreparedForward): void {
  // A response that ends without a stored answer lets identical requests waiting on it go ahead.
  response.on?.('close', () => prepared.release());
  const json = response.json.bind(response);
  let viaJson = false;
  response.json = (body: unknown) => {
    viaJson = true;
    if ((response.statusCode ?? 200) === 200) void prepared.commit?.({ format: prepared.format.name, body }).catch(() => undefined);
    return json(body);
  };
  const write = response.write?.bind(response);
  const end = response.end?.bind(response);
  if (!write || !end) return;
  let sink: ReturnType<PreparedForward['record']>;
  let started = false;
  const observe = (chunk: unknown): void => {
    if (viaJson) return;
    if (!started) {
      started = true;
      const type = String(response.getHeader?.('content-type') ?? '');
      // Only streams are recorded here: a JSON answer goes through res.json.
      if (type.includes('text/event-stream')) sink = prepared.record(response.statusCode ?? 200, type);
    }
    if (sink && (typeof chunk === 'string' || chunk instanceof Uint8Array)) sink.push(chunk);
  };
  response.write = (chunk: unknown, ...rest: unknown[]) => {
    observe(chunk);
    return write(chunk, ...rest);
  };
  response.end = (...rest: unknown[]) => {
    if (rest.length > 0 && typeof rest[0] !== 'function') observe(rest[0]);
    sink?.end();
    return end(...rest);
  };
}

/**
 * Error handler rendering compactor and body-parser errors as the wire format's error JSON
 * (OpenAI's, or Anthropic's for requests compacted as Anthropic). Other errors become a 500 with
 * no detail.
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
    const format = (response.locals.compaction as { format?: FormatName } | undefined)?.format;
    send(response, errorReply(error, format));
  };
}
