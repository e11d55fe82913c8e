import { CompactorError } from '../errors.js';
import { createCompactor, type CompactionStats, type Compactor, type CompactOptions, type CompactorOptions } from '../compactor.js';
import { isRouteTable, type RouteTable } from '../routes.js';
import { replay } from '../cache/response-cache.js';
import { encodeSse } from '../cache/sse.js';
import { bypassRequested, compactionHeaders, responseCollector, selectCompactor, toErrorBody } from './shared.js';

export interface FetchCompactionOptions {
  /** Resolve the tenant of a request. */
  tenant?: (request: Request) => string | undefined;
  /**
   * Route used to pick from a route table and passed to strategies.
   * @default the URL's pathname
   */
  route?: (request: Request) => string;
  /** @default 'auto' */
  format?: CompactOptions['format'];
  /**
   * Largest body read, in bytes; larger bodies get a 413 (`input.too-large`).
   * @default 4194304 (4 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Add `x-compactor-tokens-before` / `-after` / `-strategy` headers to the handler's response.
   * @default true
   */
  headers?: boolean;
}

type Handler<Rest extends unknown[]> = (request: Request, ...rest: Rest) => Response | Promise<Response>;

const statsOf = new WeakMap<Request, CompactionStats>();

/** The compaction stats of a request the handler received from `withCompaction`. */
export function compactionStats(request: Request): CompactionStats | undefined {
  return statsOf.get(request);
}

async function readBody(request: Request, limit: number): Promise<string> {
  const declared = Number(request.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    throw new CompactorError('input.too-large', `body: ${declared} bytes is over the limit of ${limit}`, { pointer: 'body' });
  }
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new CompactorError('input.too-large', `body: over the limit of ${limit} bytes`, { pointer: 'body' });
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Render an error as an OpenAI-style JSON Response. */
export function errorResponse(error: unknown): Response {
  const { status, body } = toErrorBody(error);
  return Response.json(body, { status });
}

/**
 * Wrap a Web-standard `(Request) => Promise<Response>` handler (Hono's `app.fetch`, a Next.js
 * route handler, Bun or Deno) so that it receives the compacted request body.
 *
 * @example
 * const app = new Hono().post('/chat', async (c) => c.json(await callModel(await c.req.json())))
 * export default { fetch: withCompaction(app.fetch, { maxInputTokens: 4000 }) }
 */
export function withCompaction<Rest extends unknown[]>(
  handler: Handler<Rest>,
  source: Compactor | RouteTable | CompactorOptions,
  options: FetchCompactionOptions = {},
): Handler<Rest> {
  const target: Compactor | RouteTable =
    isRouteTable(source) || typeof (source as Compactor).compact === 'function' ? (source as Compactor | RouteTable) : createCompactor(source as CompactorOptions);
  const maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new CompactorError('options.invalid', `option "maxBodyBytes" must be an integer >= 1; received ${String(maxBodyBytes)}`, { pointer: 'maxBodyBytes' });
  }
  const addHeaders = options.headers ?? true;
  return async (request, ...rest) => {
    if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') return handler(request, ...rest);
    let compacted: Request;
    let stats: CompactionStats;
    let result: Awaited<ReturnType<Compactor['compact']>>;
    let streamRequested = false;
    try {
      const text = await readBody(request, maxBodyBytes);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new CompactorError('input.invalid', 'body: is not valid JSON', { pointer: 'body' });
      }
      const route = options.route ? options.route(request) : new URL(request.url).pathname;
      const compactor = selectCompactor(target, route, body);
      streamRequested = (body as { stream?: unknown } | null)?.stream === true;
      result = await compactor.compact(body as object, {
        signal: request.signal,
        route,
        tenant: options.tenant?.(request),
        format: options.format ?? 'auto',
        bypassCache: bypassRequested((name) => request.headers.get(name)),
      });
      stats = result.stats;
      if (result.cache?.status === 'hit' && result.cache.response) {
        const answer = replay(result.cache.response, streamRequested);
        const headers = new Headers(addHeaders ? compactionHeaders(stats) : {});
        if (answer.kind === 'sse') {
          headers.set('content-type', 'text/event-stream; charset=utf-8');
          headers.set('cache-control', 'no-cache');
          return new Response(encodeSse(answer.events), { status: 200, headers });
        }
        headers.set('content-type', 'application/json');
        return new Response(JSON.stringify(answer.body), { status: 200, headers });
      }
      const headers = new Headers(request.headers);
      headers.delete('content-length');
      compacted = new Request(request.url, { method: request.method, headers, body: JSON.stringify(result.request), signal: request.signal });
      statsOf.set(compacted, stats);
    } catch (error) {
      return errorResponse(error);
    }
    const response = await handler(compacted, ...rest);
    let body = response.body;
    const cache = result.cache;
    if (cache?.status === 'miss' && response.status === 200 && body) {
      // Tee the body: the caller gets it as it arrives, the cache stores it once complete.
      const [forCaller, forCache] = body.tee();
      body = forCaller;
      const collector = responseCollector(response.headers.get('content-type'), stats.format);
      void (async () => {
        const reader = forCache.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          collector.push(value);
        }
        const stored = collector.finish();
        if (stored) await cache.commit(stored);
      })().catch(() => undefined);
    }
    if (!addHeaders && body === response.body) return response;
    const headers = new Headers(response.headers);
    if (addHeaders) for (const [name, value] of Object.entries(compactionHeaders(stats))) headers.set(name, value);
    return new Response(body, { status: response.status, statusText: response.statusText, headers });
  };
}
