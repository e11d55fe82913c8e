import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { errorReply, exchange, type Reply } from '../adapters/exchange.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { CompactorError, invalidOption } from '../core/errors.js';
import { DEFAULT_PRESET } from '../core/presets.js';
import { createRouteTable, isRouteTable, withSharedCache, type RouteTable, type RouteTableOptions } from '../core/routes.js';
import { FORMATS } from '../formats/registry.js';
import type { FormatName } from '../formats/wire-format.js';
import { defaultRuntime, type Runtime } from '../runtime.js';
import { ProxyMetrics } from './metrics.js';
import { PRICES, type PriceTable } from '../prices.js';
import { createUpstream, type UpstreamTarget } from './upstream.js';

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
   * @default { defaults: { maxInputTokens: 8000, strategy: 'cache-aware', onBudgetUnreachable: 'pass-through' } }
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
   * @default tenantFromApiKey
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
  /**
   * The runtime whose background failures `/metrics` reports (and the default routes compact with).
   * @default defaultRuntime()
   */
  runtime?: Runtime;
  /** Extra or overriding entries for the shipped, dated price table, for the dollars-saved metric (as `createCompactor({ prices })`). @default {} */
  prices?: PriceTable;
}

export interface ProxyServer {
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

export const PROXY_DEFAULTS = {
  upstream: 'https://api.openai.com',
  anthropicUpstream: 'https://api.anthropic.com',
  maxBodyBytes: 4 * 1024 * 1024,
  upstreamTimeoutMs: 120_000,
  streamIdleTimeoutMs: 60_000,
  logContent: false,
};

/**
 * The budget the proxy applies when given no routes. It saves money on any conversation longer
 * than a few dozen turns, not only on ones that overflow the window: at 8,000 tokens the default
 * preset saves 16–35% of the prompt bill on the shipped replay set and keeps 0.77–0.90 of the
 * evidence turns, depending on the provider's cache price (bench/RESULTS.md).
 */
export const DEFAULT_PROXY_BUDGET = 8000;

/** Pino redaction paths: anything that can carry a key, wherever a log call puts it. */
export const REDACT_PATHS = [
  'authorization',
  'apiKey',
  'headers.authorization',
  'headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  '*.authorization',
  '*.apiKey',
  '*["x-api-key"]',
];

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

const header = (request: IncomingMessage, name: string): string | undefined => {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
};

function send(response: ServerResponse, reply: Reply, extra: Record<string, string> = {}): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  response.writeHead(reply.status, { ...reply.headers, ...extra, 'content-length': Buffer.byteLength(reply.body) });
  response.end(reply.body);
}

async function writeChunk(response: ServerResponse, chunk: Uint8Array): Promise<void> {
  if (!response.write(chunk)) {
    // Backpressure: wait for the client to take what it has before reading more upstream.
    await Promise.race([once(response, 'drain'), once(response, 'close')]);
  }
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

/** One provider behind the proxy: its wire format, origin and key. */
interface Provider {
  format: FormatName;
  origin: string;
  authHeader: UpstreamTarget['authHeader'];
  apiKey: string | undefined;
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
export function createProxy(options: ProxyOptions = {}): ProxyServer {
  const settings = { ...PROXY_DEFAULTS, ...options };
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
  const runtime = settings.runtime ?? defaultRuntime();
  const table: RouteTable = isRouteTable(settings.routes)
    ? settings.routes
    : createRouteTable(
        withSharedCache(
          settings.routes ?? { defaults: { maxInputTokens: DEFAULT_PROXY_BUDGET, strategy: DEFAULT_PRESET, onBudgetUnreachable: 'pass-through', runtime } },
          cache,
        ),
      );
  const metrics = new ProxyMetrics(
    { ...PRICES, ...settings.prices },
    () => (cache ? [cache] : []),
    () => runtime.backgroundFailures(),
  );
  const logger = settings.logger ?? pino({ level: process.env.LOG_LEVEL ?? 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
  const tenantOf = settings.tenant ?? tenantFromApiKey;
  const upstream = createUpstream({ timeoutMs: settings.upstreamTimeoutMs, idleTimeoutMs: settings.streamIdleTimeoutMs });
  const providers: Record<FormatName, Provider> = {
    openai: { format: 'openai', origin: settings.upstream, authHeader: 'authorization', apiKey: settings.apiKey },
    anthropic: { format: 'anthropic', origin: settings.anthropicUpstream, authHeader: 'x-api-key', apiKey: settings.anthropicApiKey },
  };
  const active = new Set<Promise<void>>();
  let closing = false;

  const targetOf = (provider: Provider, path: string, search: string): UpstreamTarget => {
    const url = new URL(provider.origin);
    url.pathname = joinPath(url.pathname, path);
    url.search = search;
    return { url, authHeader: provider.authHeader, apiKey: provider.apiKey };
  };

  /** A compacted endpoint: cache, compaction, then the upstream. */
  async function handleCompletion(request: IncomingMessage, response: ServerResponse, provider: Provider, path: string): Promise<void> {
    const started = performance.now();
    const abort = abortOnClientClose(response);
    const route = path;
    let upstreamStarted = 0;
    const result = await exchange(
      {
        body: request,
        contentLength: request.headers['content-length'] === undefined ? null : Number(request.headers['content-length']),
        maxBodyBytes: settings.maxBodyBytes,
        compactor: table,
        format: provider.format,
        route,
        tenant: tenantOf(request),
        signal: abort.signal,
        header: (name) => header(request, name),
        headers: true,
      },
      (body, prepared) => {
        metrics.overheadSeconds.observe({ route }, (performance.now() - started) / 1000);
        metrics.record(route, prepared.stats);
        if (settings.logContent) logger.debug({ route, messages: (prepared.request as { messages?: unknown }).messages }, 'compacted request');
        upstreamStarted = performance.now();
        return upstream.send(request, targetOf(provider, path, ''), body, abort);
      },
    );
    let status: number;
    let failure: CompactorError | undefined;
    if (result.kind === 'reply') {
      failure = result.error;
      // Whatever of the body is left unread (an early 413) must not hold the connection.
      if (!request.readableEnded) request.resume();
      if (failure?.code === 'aborted') {
        status = 499;
        response.destroy();
      } else {
        status = result.reply.status;
        send(response, result.reply);
        if (!failure && result.stats) {
          metrics.overheadSeconds.observe({ route }, (performance.now() - started) / 1000);
          metrics.record(route, result.stats, result.replay?.kind === 'json' ? FORMATS[provider.format].outputTokens(result.replay.body) : 0);
        }
      }
    } else {
      status = result.upstream.status;
      try {
        response.writeHead(status, { ...result.upstream.headers, ...result.headers });
        response.flushHeaders();
        for await (const chunk of result.body ?? []) {
          await writeChunk(response, chunk);
          if (response.destroyed) throw new CompactorError('aborted', 'the client went away');
        }
        response.end();
      } catch (error) {
        // Half-way through, the status is sent: the only honest signal left is a broken stream.
        response.destroy();
        failure = CompactorError.isInstance(error) ? error : new CompactorError('upstream.failed', (error as Error).message, { cause: error });
        if (failure.code === 'aborted') status = 499;
      }
      metrics.upstreamSeconds.observe({ route }, (performance.now() - upstreamStarted) / 1000);
      // Passed through as is, but still the upstream failing: counted like a timeout.
      if (status >= 500 && !failure) metrics.failures.inc({ component: 'upstream' });
    }
    if (failure && (failure.code === 'upstream.failed' || failure.code === 'upstream.timeout')) metrics.failures.inc({ component: 'upstream' });
    if (failure) {
      const log = { route, status, code: failure.code, message: failure.message };
      if (status >= 500 && status !== 499) logger.error(log, 'request failed');
      else logger.info(log, 'request rejected');
    }
    metrics.requests.inc({ route, status: String(status) });
    const stats = result.stats;
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

  /** Any other path: relayed untouched to the provider it belongs to. */
  async function handlePassThrough(request: IncomingMessage, response: ServerResponse, provider: Provider, path: string, search: string): Promise<void> {
    const abort = abortOnClientClose(response);
    let status = 500;
    try {
      let body: Buffer | null = null;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of request) {
          size += (chunk as Buffer).length;
          if (size > settings.maxBodyBytes)
            throw new CompactorError('input.too-large', `body: over the limit of ${settings.maxBodyBytes} bytes`, { pointer: 'body' });
          chunks.push(chunk as Buffer);
        }
        body = Buffer.concat(chunks);
      }
      const answer = await upstream.send(request, targetOf(provider, path, search), body, abort);
      status = answer.status;
      response.writeHead(status, answer.headers);
      response.flushHeaders();
      for await (const chunk of answer.body ?? []) await writeChunk(response, chunk);
      response.end();
    } catch (error) {
      if (CompactorError.isInstance(error) && error.code === 'aborted') {
        response.destroy();
        return;
      }
      const reply = errorReply(error, 'openai');
      status = reply.status;
      send(response, reply);
    } finally {
      metrics.requests.inc({ route: 'passthrough', status: String(status) });
    }
  }

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://proxy');
    const path = url.pathname;
    if (request.method === 'GET' && path === '/healthz') {
      send(response, {
        status: closing ? 503 : 200,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ status: closing ? 'draining' : 'ok' }),
      });
      return;
    }
    if (request.method === 'GET' && path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          response.writeHead(200, { 'content-type': metrics.registry.contentType });
          response.end(text);
        },
        () => send(response, errorReply(new CompactorError('internal', 'metrics failed'), 'openai')),
      );
      return;
    }
    if (closing) {
      send(response, errorReply(new CompactorError('unavailable', 'server is shutting down'), 'openai'), { connection: 'close' });
      return;
    }
    const provider = path.startsWith('/v1/messages') ? providers.anthropic : providers.openai;
    const compacted = request.method === 'POST' && (/\/chat\/completions$/.test(path) || /\/v1\/messages$/.test(path));
    const work = compacted ? handleCompletion(request, response, provider, path) : handlePassThrough(request, response, provider, path, url.search);
    const tracked = work.catch((error: unknown) => {
      logger.error({ message: error instanceof Error ? error.message : String(error) }, 'unhandled proxy error');
      if (!response.headersSent) send(response, errorReply(error, provider.format));
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
      await upstream.close();
    },
  };
}
