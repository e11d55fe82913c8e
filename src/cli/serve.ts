import { createResponseCache, type ResponseCacheOptions } from '../cache/response-cache.js';
import type { CompactorOptions } from '../core/options.js';
import { invalidOption } from '../core/errors.js';
import { DEFAULT_PRESET } from '../core/presets.js';
import { createProxy, DEFAULT_PROXY_BUDGET } from '../proxy/server.js';
import { createRouteTable, loadConfig, withSharedCache, type RouteTableOptions } from '../core/routes.js';
import { memoryStore } from '../stores/memory.js';
import { redisStore } from '../stores/redis.js';
import { createRuntime, defaultRuntime } from '../runtime.js';

export interface ServeFlags {
  config?: string;
  port?: number;
  host?: string;
  upstream?: string;
  anthropicUpstream?: string;
  budget?: number;
  preset?: string;
  cache?: string;
  redisUrl?: string;
}

/** The `proxy` section of a config file (everything else is the route table). */
interface ProxyConfig {
  port?: number;
  host?: string;
  upstream?: string;
  anthropicUpstream?: string;
  maxBodyBytes?: number;
  upstreamTimeoutMs?: number;
  cache?: Omit<ResponseCacheOptions, 'store' | 'embedder' | 'verifier' | 'embeddings'> & { store?: 'memory' | 'redis' | 'off'; redisUrl?: string };
}

/** `context-compactor serve`: the proxy on embedded defaults, or a config file, until SIGTERM. */
export async function serveCommand(flags: ServeFlags): Promise<void> {
  const config: RouteTableOptions & { proxy?: ProxyConfig } = flags.config ? await loadConfig(flags.config) : {};
  if (config.proxy !== undefined && (typeof config.proxy !== 'object' || config.proxy === null)) invalidOption('config.proxy', 'an object', config.proxy);
  const proxyConfig = config.proxy ?? {};
  const { store: storeName = 'memory', redisUrl, ...cacheOptions } = proxyConfig.cache ?? {};
  const chosenStore = flags.cache ?? storeName;
  if (!['memory', 'redis', 'off'].includes(chosenStore)) invalidOption('--cache', '"memory", "redis" or "off"', chosenStore);
  // With Redis, instances share the cache's entries and, through the runtime, embeddings and summaries.
  const shared = chosenStore === 'redis' ? redisStore({ url: flags.redisUrl ?? redisUrl ?? process.env.REDIS_URL }) : undefined;
  const runtime = shared ? createRuntime({ store: shared }) : defaultRuntime();
  const cache = chosenStore === 'off' ? undefined : createResponseCache({ ...cacheOptions, store: shared ?? memoryStore(), embeddings: runtime.embeddings });
  if (cache?.embedder) {
    // Load the sentence encoder before the first request instead of during it (about a second).
    await cache.embeddings.embed(cache.embedder, ['warm up']).catch((error: unknown) => {
      process.stderr.write(`context-compactor: the cache's embedder failed to load (${(error as Error).message}); the exact layer still works\n`);
    });
  }
  const overrides: CompactorOptions = {};
  if (flags.budget !== undefined) overrides.maxInputTokens = flags.budget;
  if (flags.preset !== undefined) overrides.strategy = flags.preset;
  const base: CompactorOptions = { maxInputTokens: DEFAULT_PROXY_BUDGET, strategy: DEFAULT_PRESET, onBudgetUnreachable: 'pass-through', runtime };
  const table = createRouteTable(
    withSharedCache(
      {
        defaults: { ...base, ...config.defaults, ...overrides },
        routes: (config.routes ?? []).map((rule) => {
          const options: CompactorOptions = { ...base, ...config.defaults, ...rule.options, ...overrides };
          if (flags.preset === undefined && rule.preset !== undefined) options.strategy = rule.preset;
          return { ...rule, preset: undefined, options };
        }),
      },
      cache,
    ),
  );
  const proxy = createProxy({
    routes: table,
    cache: cache ?? false,
    runtime,
    upstream: flags.upstream ?? proxyConfig.upstream ?? process.env.OPENAI_BASE_URL?.replace(/\/v1\/?$/, '') ?? 'https://api.openai.com',
    anthropicUpstream: flags.anthropicUpstream ?? proxyConfig.anthropicUpstream ?? 'https://api.anthropic.com',
    ...(proxyConfig.maxBodyBytes !== undefined ? { maxBodyBytes: proxyConfig.maxBodyBytes } : {}),
    ...(proxyConfig.upstreamTimeoutMs !== undefined ? { upstreamTimeoutMs: proxyConfig.upstreamTimeoutMs } : {}),
    ...(process.env.OPENAI_API_KEY ? { apiKey: process.env.OPENAI_API_KEY } : {}),
    ...(process.env.ANTHROPIC_API_KEY ? { anthropicApiKey: process.env.ANTHROPIC_API_KEY } : {}),
  });
  const host = flags.host ?? proxyConfig.host ?? '127.0.0.1';
  const port = await proxy.listen(flags.port ?? proxyConfig.port ?? 8787, host);
  process.stderr.write(
    `context-compactor proxy listening on http://${host}:${port} (budget ${overrides.maxInputTokens ?? config.defaults?.maxInputTokens ?? DEFAULT_PROXY_BUDGET}, cache ${chosenStore}); POST /v1/chat/completions, /v1/messages; GET /metrics, /healthz\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stderr.write(`${signal}: draining in-flight requests…\n`);
      proxy
        .close(Number(process.env.DRAIN_MS ?? 30_000))
        .then(() => Promise.all([cache?.idle(), runtime.embeddings.idle()]))
        .then(() => cache?.store.close())
        .finally(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
