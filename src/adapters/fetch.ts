import type { CompactionStats } from '../core/stats.js';
import { invalidOption } from '../core/errors.js';
import { compactorOf, exchange, hasNoBody, type AdapterOptions, type CompactorSource } from './exchange.js';

export interface FetchCompactionOptions extends AdapterOptions<Request> {
  /**
   * Largest body read, in bytes; larger bodies get a 413 (`input.too-large`).
   * @default 4194304 (4 MiB)
   */
  maxBodyBytes?: number;
}

type Handler<Rest extends unknown[]> = (request: Request, ...rest: Rest) => Response | Promise<Response>;

export const FETCH_DEFAULTS = { format: 'auto' as const, headers: false, maxBodyBytes: 4 * 1024 * 1024 };

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
  const settings = { ...FETCH_DEFAULTS, ...options };
  if (!Number.isInteger(settings.maxBodyBytes) || settings.maxBodyBytes < 1) invalidOption('maxBodyBytes', 'an integer >= 1', settings.maxBodyBytes);
  const compactor = compactorOf(source);
  return (handler) =>
    async (request, ...rest) => {
      if (hasNoBody(request.method)) return handler(request, ...rest);
      const result = await exchange(
        {
          body: chunksOf(request.body),
          contentLength: request.headers.has('content-length') ? Number(request.headers.get('content-length')) : null,
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
}
