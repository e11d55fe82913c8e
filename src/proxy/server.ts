import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { DEFAULT_PRESET } from '../../strategies/presets.js';
import { errorReply } from '../adapters/exchange.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { createRouteTable, isRouteTable, type RouteTable, withSharedCache } from '../compose/routes.js';
import type { Store } from '../stores/types.js';
import { CompactorError, invalidOption } from '../core/errors.js';
import { PRICES } from '../prices.js';
import { defaultRuntime } from '../runtime.js';
import { Access, type Caller, CredentialCheck } from './auth.js';
import { HEADERS_TIMEOUT_MS, header, semaphore, send } from './io.js';
import { ProxyMetrics } from './metrics.js';
import { DEFAULT_PROXY_BUDGET, type ProxyOptions, REDACT_PATHS, resolveProxyOptions } from './options.js';
import { createRelay } from './relay.js';
import { decodedPath, hopsOf, LOOPBACK, passThroughRules, providersOf, routeOf } from './router.js';
import { createUpstream } from './upstream.js';

export type { Caller, ProxyKey, TenantSource } from './auth.js';
export { DEFAULT_RELAYS } from './router.js';
export {
  DEFAULT_PROXY_BUDGET,
  httpUrl,
  JSON_PROXY_OPTIONS,
  PROXY_DEFAULTS,
  PROXY_OPTION_NAMES,
  PROXY_OPTIONS,
  type ProxyOptions,
  REDACT_PATHS,
} from './options.js';

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
  /** `close()` with its default drain. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * An OpenAI-compatible (and Anthropic Messages) proxy: every request goes through its route's
 * cache and compaction, then on to the upstream, streamed back chunk by chunk. It serves the
 * compacted endpoints (`/v1/chat/completions`, Azure's `/openai/deployments/NAME/chat/completions`,
 * `/v1/messages`) and the `passThrough` list; everything else is a 404.
 *
 * @example
 * const proxy = createProxy({ upstream: 'https://api.openai.com' })
 * await proxy.listen(8787)
 * // new OpenAI({ baseURL: 'http://localhost:8787/v1' }) with the caller's own key
 */
/** A response cache's store, when replicas share it (not the in-process one) and it can count. */
function sharedStoreOf(cache: ResponseCache | undefined): Store | undefined {
  const store = cache?.store;
  return store && store.kind !== 'memory' && typeof store.increment === 'function' ? store : undefined;
}

export function createProxy(options: ProxyOptions = {}): ProxyServer {
  const { settings } = resolveProxyOptions(options);
  const passThrough = passThroughRules(settings);
  const clock = settings.clock ?? Date.now;
  // Replicas share limits and credential acceptance through a shared store: the cache's, when it is not in memory.
  const shared = settings.sharedStore === false ? undefined : (settings.sharedStore ?? sharedStoreOf(settings.cache || undefined));
  const sharedFailed = () => metrics.failures.inc({ component: 'shared-store' });
  const access = new Access({
    keys: settings.keys,
    holdsUpstreamKey: Boolean(settings.apiKey || settings.anthropicApiKey),
    allowUnauthenticated: settings.allowUnauthenticated,
    tenant: settings.tenant,
    clock,
    store: shared,
    onFailure: sharedFailed,
  });
  const accepted = new CredentialCheck(settings.credentialTtlMs, clock, shared, sharedFailed);
  const heavy = semaphore(settings.heavyConcurrency);
  // Appended to the hop header of every request this proxy sends: seeing it come back is a loop.
  const instance = randomBytes(6).toString('hex');
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
  const upstream = createUpstream({ timeoutMs: settings.upstreamTimeoutMs, idleTimeoutMs: settings.streamIdleTimeoutMs });
  const providers = providersOf(settings);
  const { handleCompletion, handlePassThrough, refuse } = createRelay({ settings, table, access, accepted, heavy, metrics, logger, upstream });
  const active = new Set<Promise<void>>();
  let closing = false;

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://proxy');
    const method = request.method ?? 'GET';
    let path: string;
    try {
      path = decodedPath(url.pathname);
    } catch (error) {
      refuse(request, response, error as CompactorError, 'openai', 'unknown');
      return;
    }
    // Liveness: the process answers, draining or not (a drain must not get it restarted).
    if (method === 'GET' && path === '/livez') {
      send(response, { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: closing ? 'draining' : 'ok' }) });
      return;
    }
    // Readiness (and /healthz, its older name): 503 while draining, so the load balancer stops sending.
    if (method === 'GET' && (path === '/healthz' || path === '/readyz')) {
      send(response, {
        status: closing ? 503 : 200,
        headers: { 'content-type': 'application/json', ...(closing ? { connection: 'close' } : {}) },
        body: JSON.stringify({ status: closing ? 'draining' : 'ok' }),
      });
      return;
    }
    if (method === 'GET' && path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          response.writeHead(200, { 'content-type': metrics.registry.contentType });
          response.end(text);
        },
        () => send(response, errorReply(new CompactorError('internal', 'metrics failed'), 'openai')),
      );
      return;
    }
    const route = routeOf(method, path, passThrough);
    const { endpoint, relayed, label } = route;
    // Anthropic serves /v1/models too: its clients say so with their version header.
    const format = relayed && route.format === 'openai' && header(request, 'anthropic-version') !== undefined ? 'anthropic' : route.format;
    if (closing) {
      refuse(request, response, new CompactorError('unavailable', 'server is shutting down'), format, label);
      return;
    }
    if (!endpoint && !relayed) {
      refuse(
        request,
        response,
        new CompactorError('not-found', `${method} ${path.length > 80 ? `${path.slice(0, 80)}…` : path}: not served by this proxy`),
        format,
        label,
      );
      return;
    }
    let hops: string;
    try {
      hops = hopsOf(request, instance);
    } catch (error) {
      refuse(request, response, error as CompactorError, format, label);
      return;
    }
    const provider = providers[format];
    const work = (async () => {
      let caller: Caller;
      try {
        caller = await access.authenticate(request);
      } catch (error) {
        refuse(request, response, CompactorError.isInstance(error) ? error : new CompactorError('internal', String(error)), format, label);
        return;
      }
      await (endpoint
        ? handleCompletion(request, response, provider, path, url.search, endpoint.label, caller, hops)
        : handlePassThrough(request, response, provider, path, url.search, caller, hops));
    })();
    const tracked = work.catch((error: unknown) => {
      logger.error({ message: error instanceof Error ? error.message : String(error) }, 'unhandled proxy error');
      if (!response.headersSent) send(response, errorReply(error, provider.format));
      else response.destroy();
    });
    active.add(tracked);
    void tracked.finally(() => active.delete(tracked));
  });
  // Backstops behind the proxy's own body deadline: Node closes a connection whose headers take
  // over 30 s, or whose whole request takes longer than headers and body together may.
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = HEADERS_TIMEOUT_MS + settings.bodyTimeoutMs + 1000;

  return {
    server,
    metrics,
    async listen(port = 8787, host = '127.0.0.1') {
      server.listen(port, host);
      await once(server, 'listening');
      const bound = (server.address() as AddressInfo).port;
      // An upstream that is this very proxy would forward each request to itself until it falls over.
      for (const name of ['upstream', 'anthropicUpstream'] as const) {
        const target = new URL(settings[name]);
        const targetPort = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
        if (targetPort === bound && (LOOPBACK.has(target.hostname) || target.hostname === host)) {
          await new Promise<void>((resolve) => server.close(() => resolve()));
          invalidOption(name, `another server than this proxy (it listens on ${host}:${bound})`, settings[name]);
        }
      }
      return bound;
    },
    async close(drainMs = 30_000) {
      // Draining: still listening, so health checks see a 503 and new requests a coded refusal.
      closing = true;
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...active]), new Promise((resolve) => (timer = setTimeout(resolve, drainMs)))]);
      clearTimeout(timer);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await upstream.close();
      await runtime.close();
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
}
