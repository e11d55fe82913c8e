import type { CompactionStats } from '../core/stats.js';
import { isResponsesRequest } from '../formats/responses/types.js';
import { isUtf8 } from 'node:buffer';
import { defineOptions, rules } from '../core/define-options.js';
import { CompactorError } from '../core/errors.js';
import { ADAPTER_RULES, compactorOf, errorReply, exchange, hasNoBody, readBody, type AdapterOptions, type CompactorSource } from './exchange.js';

export interface FetchCompactionOptions extends AdapterOptions<Request> {
  /**
   * Largest body read, in bytes; larger bodies get a 413 (`input.too-large`).
   * @default 4194304 (4 MiB)
   */
  maxBodyBytes?: number;
  /**
   * The paths whose POSTs may be chat requests. Only a request on one of them, whose body is a
   * JSON object with a `messages` array (or a Responses `input`), is compacted; everything else the
   * app serves (`/login`, uploads, other JSON APIs) reaches the handler untouched.
   * @default /\/(chat\/completions|messages|chat|responses)\/?$/
   */
  paths?: RegExp | ((path: string) => boolean);
}

type Handler<Rest extends unknown[]> = (request: Request, ...rest: Rest) => Response | Promise<Response>;

export const FETCH_DEFAULTS = {
  format: 'auto' as const,
  headers: false,
  maxBodyBytes: 4 * 1024 * 1024,
  paths: /\/(chat\/completions|messages|chat|responses)\/?$/,
};

export const FETCH_OPTIONS = defineOptions<FetchCompactionOptions, typeof FETCH_DEFAULTS>({
  factory: 'fetch compaction',
  defaults: FETCH_DEFAULTS,
  rules: {
    ...ADAPTER_RULES,
    maxBodyBytes: rules.int(1),
    paths: rules.either({ expected: 'a RegExp', test: (value) => value instanceof RegExp, invalid: 'x' }, rules.function),
  },
  docs: [
    ['src/adapters/fetch.ts', 'FetchCompactionOptions'],
    ['src/adapters/exchange.ts', 'AdapterOptions'],
  ],
});

const statsOf = new WeakMap<Request, CompactionStats>();

// Node's web streams are async iterable and have `from`; the DOM typings this project compiles with do not say so.
const chunksOf = (stream: ReadableStream<Uint8Array> | null): AsyncIterable<Uint8Array> | null => stream as unknown as AsyncIterable<Uint8Array> | null;
const streamOf = (chunks: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> =>
  (ReadableStream as unknown as { from(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> }).from(chunks);

/** The compaction stats of a request the handler received from `compaction`. */
export function compactionStats(request: Request): CompactionStats | undefined {
  return statsOf.get(request);
}

/**
 * Wrap a Web-standard `(Request) => Response` handler (Hono's `app.fetch`, a Next.js route
 * handler, Bun or Deno): the handler receives the compacted body; a cache hit is answered without
 * calling it; a 200 it returns is stored as it streams to the caller. Bad input gets an error
 * `Response` in the request's wire format.
 *
 * @example
 * const app = new Hono().post('/v1/chat/completions', async (c) => c.json(await callModel(await c.req.json())))
 * export default { fetch: compaction({ maxInputTokens: 4000 })(app.fetch) }
 */
export function compaction(source: CompactorSource, options: FetchCompactionOptions = {}): <Rest extends unknown[]>(handler: Handler<Rest>) => Handler<Rest> {
  const settings = FETCH_OPTIONS.parse(options);
  const onPath = typeof settings.paths === 'function' ? settings.paths : (path: string) => (settings.paths as RegExp).test(path);
  const compactor = compactorOf(source);
  return (handler) => {
    if (typeof handler !== 'function') {
      // app.use('/v1/*', compaction(…)) in Hono hands this its context: that is the (c, next) form.
      throw new CompactorError('options.invalid', 'compaction(…) wraps a (request) => Response handler; as Hono middleware, use honoCompaction(…)', {
        pointer: 'handler',
      });
    }
    return async (request, ...rest) => {
      if (hasNoBody(request.method) || !onPath(new URL(request.url).pathname)) return handler(request, ...rest);
      let bytes: Buffer;
      let parsed: object | undefined;
      try {
        bytes = await readBody(
          chunksOf(request.body),
          settings.maxBodyBytes,
          request.headers.has('content-length') ? Number(request.headers.get('content-length')) : null,
        );
        parsed = chatBody(request, bytes);
      } catch (error) {
        const reply = errorReply(error, settings.format === 'auto' ? undefined : settings.format);
        return new Response(reply.body, { status: reply.status, headers: reply.headers });
      }
      // Not a chat request: the handler gets it as it came.
      if (!parsed) return handler(new Request(request, { body: bytes.byteLength > 0 ? new Uint8Array(bytes) : null, duplex: 'half' } as RequestInit), ...rest);
      const result = await exchange(
        {
          body: null,
          parsed,
          text: bytes.toString('utf8'),
          maxBodyBytes: settings.maxBodyBytes,
          compactor,
          format: settings.format,
          route: settings.route ? settings.route(request) : new URL(request.url).pathname,
          tenant: settings.tenant?.(request),
          signal: request.signal,
          header: (name) => request.headers.get(name),
          headers: settings.headers,
        },
        async (body, prepared) => {
          const headers = new Headers(request.headers);
          headers.delete('content-length');
          const forwarded = new Request(request.url, { method: request.method, headers, body, signal: request.signal });
          statsOf.set(forwarded, prepared.stats);
          const response = await handler(forwarded, ...rest);
          return { status: response.status, contentType: response.headers.get('content-type'), body: chunksOf(response.body), response };
        },
      );
      if (result.kind === 'reply') return new Response(result.reply.body, { status: result.reply.status, headers: result.reply.headers });
      const { response } = result.upstream;
      const untouched = result.body === result.upstream.body;
      if (untouched && Object.keys(result.headers).length === 0) return response;
      const headers = new Headers(response.headers);
      for (const [name, value] of Object.entries(result.headers)) headers.set(name, value);
      const body = untouched || result.body === null ? response.body : streamOf(result.body);
      return new Response(body, { status: response.status, statusText: response.statusText, headers });
    };
  };
}

/**
 * The body of a chat request (a JSON object with a `messages` array), or undefined for anything
 * else: another content type, or JSON of another shape. JSON that does not parse, sent to a chat
 * path, is the caller's mistake: `input.invalid`.
 */
function chatBody(request: Request, bytes: Buffer): object | undefined {
  const type = request.headers.get('content-type') ?? '';
  if (!/\bjson\b/i.test(type) || bytes.byteLength === 0) return undefined;
  if (!isUtf8(bytes)) throw new CompactorError('input.invalid', 'body: is not valid UTF-8', { pointer: 'body' });
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new CompactorError('input.invalid', 'body: is not valid JSON', { pointer: 'body' });
  }
  if (typeof body !== 'object' || body === null) return undefined;
  // A chat or Anthropic body (`messages`), or a Responses body (`input`).
  return Array.isArray((body as { messages?: unknown }).messages) || isResponsesRequest(body) ? (body as object) : undefined;
}

/** The slice of Hono's context this middleware uses (Hono itself is not a dependency). */
interface HonoContext {
  req: { raw: Request };
  res: Response;
}

/**
 * Hono middleware, the `(c, next)` form: compacts chat requests (as `compaction`) before the
 * route's handler, which reads the compacted body with `c.req.json()`; a cache hit is answered
 * without calling it, and a 200 it returns is stored as it streams.
 *
 * @example
 * app.use('/v1/*', honoCompaction({ maxInputTokens: 4000 }))
 * app.post('/v1/chat/completions', async (c) => c.json(await callModel(await c.req.json())))
 */
export function honoCompaction(
  source: CompactorSource,
  options: FetchCompactionOptions = {},
): (c: HonoContext, next: () => Promise<void>) => Promise<Response | undefined> {
  const wrap = compaction(source, options);
  return async (c, next) => {
    const handled = wrap(async (request: Request) => {
      c.req.raw = request;
      await next();
      return c.res;
    });
    const response = await handled(c.req.raw);
    // The handler's own response needs no reassigning; a cache hit or an error is the answer.
    if (response !== c.res) c.res = response;
    return undefined;
  };
}
