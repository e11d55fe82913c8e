import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { Agent, request as undiciRequest, type Dispatcher } from 'undici';
import { replay, type ResponseCache } from '../cache/response-cache.js';
import { encodeSse } from '../cache/sse.js';
import { loadPrices, type PriceTable } from '../bench/cost.js';
import type { CompactionResult, CompactionStats, Compactor } from '../compactor.js';
import { CompactorError, invalidOption } from '../errors.js';
import { createRouteTable, isRouteTable, withSharedCache, type RouteTable, type RouteTableOptions } from '../routes.js';
import { bypassRequested, compactionHeaders, responseCollector, toErrorBody } from '../adapters/shared.js';
import { ProxyMetrics } from './metrics.js';
import { sharedEmbeddingCache } from '../../strategies/relevance/index.js';
import { sharedSummaries } from '../../strategies/summarize/index.js';

export interface ProxyOptions {
  /**
   * Where OpenAI-style requests go: the origin the request path (`/v1/chat/completions`) is
   * appended to. Any OpenAI-compatible server works (vLLM, Ollama, LiteLLM, Azure via a gateway).
   * @default 'https://api.openai.com'
   */
  upstream?: string;
  /**
   * Where Anthropic `/v1/messages` requests go.
   * @default 'https://api.anthropic.com'
   */
  anthropicUpstream?: string;
  /** API key sent upstream when the caller sends none (`Authorization: Bearer` / `x-api-key`). */
  apiKey?: string;
  /** Anthropic API key sent upstream when the caller sends none. */
  anthropicApiKey?: string;
  /**
   * Compaction per route: a route table, or its options (`{ defaults, routes }`). Routes match
   * the request path and the body's model.
   * @default { defaults: { maxInputTokens: 8000, strategy: 'relevance', onBudgetUnreachable: 'pass-through' } }
   */
  routes?: RouteTable | RouteTableOptions;
  /**
   * The response cache every route shares, or false for none. Pass the same one in the routes'
   * options if you build the table yourself.
   * @default false
   */
  cache?: ResponseCache | false;
  /**
   * The tenant of a request. The default is a hash of its API key, so callers with different
   * keys never share cache entries.
   */
  tenant?: (request: IncomingMessage) => string | undefined;
  /**
   * Largest request body, in bytes; larger ones get a 413 (`input.too-large`).
   * @default 4194304 (4 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Milliseconds to wait for the upstream's response headers; then 504 (`upstream.timeout`).
   * @default 120000
   */
  upstreamTimeoutMs?: number;
  /**
   * Milliseconds a streamed response may stay silent before the proxy gives up on it.
   * @default 60000
   */
  streamIdleTimeoutMs?: number;
  /** pino logger. API keys are redacted; message content is never logged unless `logContent`. */
  logger?: Logger;
  /**
   * Log the compacted messages at debug level (for debugging only: they are user content).
   * @default false
   */
  logContent?: boolean;
  /** Price table for the dollars-saved metric. @default bench/prices.json, if present */
  prices?: PriceTable;
}

export interface Proxy {
  readonly server: Server;
  readonly metrics: ProxyMetrics;
  /** Start listening; resolves with the bound port. */
  listen(port?: number, host?: string): Promise<number>;
  /**
   * Stop accepting connections, let in-flight requests (streams included) finish for up to
   * `drainMs`, then close what is left.
   */
  close(drainMs?: number): Promise<void>;
}

const DEFAULTS = {
  upstream: 'https://api.openai.com',
  anthropicUpstream: 'https://api.anthropic.com',
  maxBodyBytes: 4 * 1024 * 1024,
  upstreamTimeoutMs: 120_000,
  streamIdleTimeoutMs: 60_000,
  logContent: false,
};

/**
 * The budget the proxy applies when given no routes. It saves money on any conversation longer
 * than a few dozen turns, not only on ones that overflow the window: at 8,000 tokens the
 * `relevance` preset kept 93% of LoCoMo evidence turns verbatim (bench/RESULTS.md), while a long
 * chat is resent whole on every turn.
 */
export const DEFAULT_PROXY_BUDGET = 8000;

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length', 'expect']);
// fetch decompresses, so the upstream's encoding and length no longer describe the body.
const DROP_FROM_RESPONSE = new Set([...HOP_BY_HOP, 'content-encoding']);

/** Pino redaction paths: anything that can carry a key, wherever a log call puts it. */
export const REDACT_PATHS = ['authorization', 'apiKey', 'headers.authorization', 'headers["x-api-key"]', 'req.headers.authorization', 'req.headers["x-api-key"]', '*.authorization', '*.apiKey', '*["x-api-key"]'];

function apiKeyOf(request: IncomingMessage): string | undefined {
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string' && authorization.toLowerCase().startsWith('bearer ')) return authorization.slice(7).trim();
  const key = request.headers['x-api-key'];
  return typeof key === 'string' ? key : undefined;
}

/** The default tenant: a short hash of the caller's API key (never the key itself). */
export function tenantFromApiKey(request: IncomingMessage): string | undefined {
  const key = apiKeyOf(request);
  return key ? `key:${createHash('sha256').update(key).digest('base64url').slice(0, 16)}` : undefined;
}

async function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    request.resume();
    throw new CompactorError('input.too-large', `body: ${declared} bytes is over the limit of ${limit}`, { pointer: 'body' });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      request.resume();
      throw new CompactorError('input.too-large', `body: over the limit of ${limit} bytes`, { pointer: 'body' });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const text = JSON.stringify(body);
  response.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/** An error in the caller's wire format (OpenAI or Anthropic). */
function errorBody(error: unknown, anthropic: boolean): { status: number; body: unknown } {
  const { status, body } = toErrorBody(error);
  if (CompactorError.isInstance(error) && (error.code === 'upstream.timeout' || error.code === 'upstream.failed')) body.error.message = error.message;
  if (!anthropic) return { status, body };
  const type = status === 413 ? 'request_too_large' : status < 500 ? 'invalid_request_error' : status === 504 ? 'timeout_error' : 'api_error';
  return { status, body: { type: 'error', error: { type, message: body.error.message, code: body.error.code } } };
}

async function writeChunk(response: ServerResponse, chunk: Uint8Array): Promise<void> {
  if (!response.write(chunk)) {
    // Backpressure: wait for the client to take what it has before reading more upstream.
    await Promise.race([once(response, 'drain'), once(response, 'close')]);
  }
}

/**
 * An OpenAI-compatible (and Anthropic Messages) proxy: every request goes through its route's
 * cache and compaction, then on to the upstream, streamed back chunk by chunk.
 *
 * @example
 * const proxy = createProxy({ upstream: 'https://api.openai.com' })
 * await proxy.listen(8787)
 * // new OpenAI({ baseURL: 'http://localhost:8787/v1' })
 */
export function createProxy(options: ProxyOptions = {}): Proxy {
  const settings = { ...DEFAULTS, ...options };
  for (const name of ['upstream', 'anthropicUpstream'] as const) {
    try {
      new URL(settings[name]);
    } catch {
      invalidOption(name, 'an http(s) URL', settings[name]);
    }
  }
  for (const name of ['maxBodyBytes', 'upstreamTimeoutMs', 'streamIdleTimeoutMs'] as const) {
    if (!Number.isInteger(settings[name]) || settings[name] < 1) invalidOption(name, 'an integer >= 1', settings[name]);
  }
  const cache = settings.cache || undefined;
  const table: RouteTable = isRouteTable(settings.routes)
    ? settings.routes
    : createRouteTable(withSharedCache(settings.routes ?? { defaults: { maxInputTokens: DEFAULT_PROXY_BUDGET, strategy: 'relevance', onBudgetUnreachable: 'pass-through' } }, cache));
  let prices = settings.prices;
  if (!prices) {
    try {
      prices = loadPrices();
    } catch {
      prices = {};
    }
  }
  const metrics = new ProxyMetrics(
    prices,
    () => (cache ? [cache] : []),
    () => {
      const queue = sharedSummaries().queue.stats();
      return { embedder: sharedEmbeddingCache().backgroundFailures, summarizer: queue.failed, 'summary-queue-full': queue.dropped };
    },
  );
  const logger = settings.logger ?? pino({ level: process.env.LOG_LEVEL ?? 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
  const tenantOf = settings.tenant ?? tenantFromApiKey;
  const active = new Set<Promise<void>>();
  let closing = false;
  // One keep-alive pool per proxy, shared by every request: undici's request() costs a fraction of
  // fetch() per call (bench/RESULTS.md, proxy load).
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: null, headersTimeout: 0, bodyTimeout: 0 });

  async function forward(
    request: IncomingMessage,
    response: ServerResponse,
    target: URL,
    body: Buffer | string,
    abort: AbortController,
    auth: { header: 'authorization' | 'x-api-key'; key: string | undefined },
    capture?: (status: number, contentType: string | undefined) => { push(chunk: Uint8Array): void; end(): void } | undefined,
    extraHeaders: Record<string, string> = {},
  ): Promise<number> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      // accept-encoding stays behind: the proxy reads (and caches) what it relays, so it asks for identity.
      if (HOP_BY_HOP.has(name) || name === 'accept-encoding' || name.startsWith('x-compactor-') || value === undefined) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    if (auth.key && headers.authorization === undefined && headers['x-api-key'] === undefined) headers[auth.header] = auth.header === 'authorization' ? `Bearer ${auth.key}` : auth.key;
    const timeout = setTimeout(() => abort.abort(new CompactorError('upstream.timeout', `upstream did not answer within ${settings.upstreamTimeoutMs} ms`)), settings.upstreamTimeoutMs);
    let upstream: Dispatcher.ResponseData;
    try {
      upstream = await undiciRequest(target, {
        method: (request.method ?? 'POST') as Dispatcher.HttpMethod,
        headers,
        body: request.method === 'GET' || request.method === 'HEAD' ? null : body,
        signal: abort.signal,
        dispatcher: agent,
      });
    } catch (error) {
      const reason = abort.signal.reason;
      if (CompactorError.isInstance(reason)) throw reason;
      if (abort.signal.aborted) throw new CompactorError('aborted', 'the client went away', { cause: error });
      throw new CompactorError('upstream.failed', `upstream unreachable: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(timeout);
    }
    const outgoing: Record<string, string | string[]> = { ...extraHeaders };
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (value !== undefined && !DROP_FROM_RESPONSE.has(name)) outgoing[name] = value;
    }
    response.writeHead(upstream.statusCode, outgoing);
    response.flushHeaders();
    const contentType = upstream.headers['content-type'];
    const sink = capture?.(upstream.statusCode, Array.isArray(contentType) ? contentType[0] : contentType);
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => abort.abort(new CompactorError('upstream.timeout', `upstream stream silent for ${settings.streamIdleTimeoutMs} ms`)), settings.streamIdleTimeoutMs);
    };
    try {
      armIdle();
      for await (const chunk of upstream.body) {
        armIdle();
        sink?.push(chunk as Uint8Array);
        await writeChunk(response, chunk as Uint8Array);
        if (response.destroyed) throw new CompactorError('aborted', 'the client went away');
      }
    } catch (error) {
      // Half-way through, the status is sent: the only honest signal left is a broken stream.
      upstream.body.destroy();
      response.destroy();
      const reason = abort.signal.reason;
      if (CompactorError.isInstance(reason)) throw reason;
      throw CompactorError.isInstance(error) ? error : new CompactorError('upstream.failed', `upstream stream broke: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(idle);
    }
    response.end();
    sink?.end();
    return upstream.statusCode;
  }

  async function handleCompletion(request: IncomingMessage, response: ServerResponse, path: string, anthropic: boolean): Promise<void> {
    const started = performance.now();
    const abort = abortOnClientClose(response);
    const route = path;
    let stats: CompactionStats | undefined;
    let status = 500;
    try {
      const raw = await readBody(request, settings.maxBodyBytes);
      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new CompactorError('input.invalid', 'body: is not valid JSON', { pointer: 'body' });
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new CompactorError('input.invalid', 'body: must be a JSON object', { pointer: 'body' });
      const model = typeof (body as { model?: unknown }).model === 'string' ? (body as { model: string }).model : undefined;
      const compactor: Compactor = table.select({ path, model });
      const result: CompactionResult<object> = await compactor.compact(body, {
        signal: abort.signal,
        route,
        tenant: tenantOf(request),
        format: anthropic ? 'anthropic' : 'openai',
        bypassCache: bypassRequested((name) => {
          const value = request.headers[name];
          return Array.isArray(value) ? value.join(', ') : value;
        }),
      });
      stats = result.stats;
      const headers = compactionHeaders(stats);
      metrics.overheadSeconds.observe({ route }, (performance.now() - started) / 1000);
      if (settings.logContent) logger.debug({ route, messages: (result.request as { messages?: unknown }).messages }, 'compacted request');
      const streamRequested = (body as { stream?: unknown }).stream === true;
      if (result.cache?.status === 'hit' && result.cache.response) {
        const answer = replay(result.cache.response, streamRequested);
        status = 200;
        if (answer.kind === 'json') sendJson(response, 200, answer.body, headers);
        else {
          response.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
          response.end(encodeSse(answer.events));
        }
        metrics.record(route, stats, outputTokensOf(answer.kind === 'json' ? answer.body : undefined));
        return;
      }
      metrics.record(route, stats);
      const base = anthropic ? settings.anthropicUpstream : settings.upstream;
      const target = new URL(base);
      target.pathname = joinPath(target.pathname, path);
      const cacheOutcome = result.cache;
      const upstreamStarted = performance.now();
      status = await forward(
        request,
        response,
        target,
        JSON.stringify(result.request),
        abort,
        anthropic ? { header: 'x-api-key', key: settings.anthropicApiKey } : { header: 'authorization', key: settings.apiKey },
        (upstreamStatus, contentType) => {
          // Only complete 200s are stored; the cache itself checks the body is a finished answer.
          if (cacheOutcome?.status !== 'miss' || upstreamStatus !== 200) return undefined;
          const collector = responseCollector(contentType, stats!.format);
          return {
            push: (chunk) => collector.push(chunk),
            end: () => {
              const stored = collector.finish();
              if (stored) void cacheOutcome.commit(stored).catch(() => metrics.failures.inc({ component: 'cache-store' }));
            },
          };
        },
        headers,
      );
      metrics.upstreamSeconds.observe({ route }, (performance.now() - upstreamStarted) / 1000);
      // Passed through as is, but still the upstream failing: counted like a timeout.
      if (status >= 500) metrics.failures.inc({ component: 'upstream' });
    } catch (error) {
      const code = CompactorError.isInstance(error) ? error.code : 'internal';
      if (code === 'upstream.failed' || code === 'upstream.timeout') metrics.failures.inc({ component: 'upstream' });
      if (code === 'aborted') {
        status = 499;
        response.destroy();
      } else {
        const rendered = errorBody(error, anthropic);
        status = rendered.status;
        sendJson(response, rendered.status, rendered.body, stats ? compactionHeaders(stats) : {});
      }
      const log = { route, status, code, message: error instanceof Error ? error.message : String(error) };
      if (status >= 500 && status !== 499) logger.error(log, 'request failed');
      else logger.info(log, 'request rejected');
    } finally {
      metrics.requests.inc({ route, status: String(status) });
      logger.info(
        {
          route,
          status,
          model: stats?.model,
          tokensBefore: stats?.tokensBefore,
          tokensAfter: stats?.tokensAfter,
          cache: stats?.cache?.status,
          failures: stats?.failures.length,
          ms: Math.round(performance.now() - started),
        },
        'request',
      );
    }
  }

  async function handlePassThrough(request: IncomingMessage, response: ServerResponse, path: string, search: string): Promise<void> {
    const abort = abortOnClientClose(response);
    let status = 500;
    try {
      const body = request.method === 'GET' || request.method === 'HEAD' ? '' : await readBody(request, settings.maxBodyBytes);
      const anthropic = path.startsWith('/v1/messages');
      const base = anthropic ? settings.anthropicUpstream : settings.upstream;
      const target = new URL(base);
      target.pathname = joinPath(target.pathname, path);
      target.search = search;
      status = await forward(request, response, target, body, abort, anthropic ? { header: 'x-api-key', key: settings.anthropicApiKey } : { header: 'authorization', key: settings.apiKey });
    } catch (error) {
      if (CompactorError.isInstance(error) && error.code === 'aborted') return;
      const rendered = errorBody(error, false);
      status = rendered.status;
      sendJson(response, rendered.status, rendered.body);
    } finally {
      metrics.requests.inc({ route: 'passthrough', status: String(status) });
    }
  }

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://proxy');
    const path = url.pathname;
    if (request.method === 'GET' && path === '/healthz') {
      sendJson(response, closing ? 503 : 200, { status: closing ? 'draining' : 'ok' });
      return;
    }
    if (request.method === 'GET' && path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          response.writeHead(200, { 'content-type': metrics.registry.contentType });
          response.end(text);
        },
        () => sendJson(response, 500, { error: { message: 'metrics failed', type: 'server_error', code: 'internal', param: null } }),
      );
      return;
    }
    if (closing) {
      sendJson(response, 503, { error: { message: 'server is shutting down', type: 'server_error', code: 'unavailable', param: null } }, { connection: 'close' });
      return;
    }
    let work: Promise<void>;
    if (request.method === 'POST' && /\/chat\/completions$/.test(path)) work = handleCompletion(request, response, path, false);
    else if (request.method === 'POST' && /\/v1\/messages$/.test(path)) work = handleCompletion(request, response, path, true);
    else work = handlePassThrough(request, response, path, url.search);
    const tracked = work.catch((error: unknown) => {
      logger.error({ message: error instanceof Error ? error.message : String(error) }, 'unhandled proxy error');
      if (!response.headersSent) sendJson(response, 500, { error: { message: 'internal error', type: 'server_error', code: 'internal', param: null } });
      else response.destroy();
    });
    active.add(tracked);
    void tracked.finally(() => active.delete(tracked));
  });
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;

  return {
    server,
    metrics,
    async listen(port = 8787, host = '127.0.0.1') {
      server.listen(port, host);
      await once(server, 'listening');
      return (server.address() as AddressInfo).port;
    },
    async close(drainMs = 30_000) {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...active]), new Promise((resolve) => (timer = setTimeout(resolve, drainMs)))]);
      clearTimeout(timer);
      server.closeAllConnections();
      await closed;
      await agent.close().catch(() => undefined);
    },
  };
}

/** An AbortController that fires when the client goes away before the response is finished. */
function abortOnClientClose(response: ServerResponse): AbortController {
  const abort = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) abort.abort(new CompactorError('aborted', 'the client went away'));
  });
  return abort;
}

function joinPath(basePath: string, path: string): string {
  const trimmed = basePath.replace(/\/+$/, '');
  // An upstream given as https://host/v1 and a request for /v1/… must not become /v1/v1/….
  if (trimmed.endsWith('/v1') && path.startsWith('/v1/')) return `${trimmed}${path.slice(3)}`;
  return `${trimmed}${path}`;
}

function outputTokensOf(body: unknown): number {
  const usage = (body as { usage?: { completion_tokens?: unknown; output_tokens?: unknown } } | undefined)?.usage;
  const value = usage?.completion_tokens ?? usage?.output_tokens;
  return typeof value === 'number' ? value : 0;
}

