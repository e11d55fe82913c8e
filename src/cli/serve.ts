import { createResponseCache, RESPONSE_CACHE_OPTION_NAMES, type ResponseCache, type ResponseCacheOptions } from '../cache/response-cache.js';
import type { CompactorOptions } from '../compose/options.js';
import { invalidOption, rejectUnknownKeys, underPath } from '../core/errors.js';
import { DEFAULT_PRESET } from '../../strategies/presets.js';
import type { ProxyKey, TenantSource } from '../proxy/auth.js';
import { createProxy, DEFAULT_PROXY_BUDGET, httpUrl, JSON_PROXY_OPTIONS, type ProxyOptions } from '../proxy/server.js';
import { createRouteTable, loadConfig, withSharedCache, type RouteTableOptions } from '../compose/routes.js';
import { memoryStore } from '../stores/memory.js';
import { redisStore } from '../stores/redis.js';
import { createRuntime, defaultRuntime, type Runtime } from '../runtime.js';
import type { Embedder } from '../embedders/types.js';
import { builtinTokenizer } from '../tokens/tokenizer.js';

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
  /** False with --no-cache-hints. */
  cacheHints?: boolean;
}

/** The `proxy` section of a config file (everything else is the route table). */
interface ProxyConfig {
  port?: number;
  host?: string;
  upstream?: string;
  anthropicUpstream?: string;
  maxBodyBytes?: number;
  upstreamTimeoutMs?: number;
  bodyTimeoutMs?: number;
  cacheHints?: 'auto' | boolean;
  streamIdleTimeoutMs?: number;
  keys?: ProxyKey[];
  allowUnauthenticated?: boolean;
  tenant?: TenantSource;
  credentialTtlMs?: number;
  passThrough?: string[];
  omitDefaultRelays?: boolean;
  heavyBodyBytes?: number;
  heavyConcurrency?: number;
  cache?: Omit<ResponseCacheOptions, 'store' | 'embedder' | 'verifier' | 'embeddings'> & { store?: 'memory' | 'redis' | 'off'; redisUrl?: string };
}

const PROXY_CONFIG_KEYS = ['port', 'host', 'upstream', 'anthropicUpstream', 'cache', ...JSON_PROXY_OPTIONS];
const CACHE_CONFIG_KEYS = [
  'store',
  'redisUrl',
  ...RESPONSE_CACHE_OPTION_NAMES.filter((name) => !['store', 'embedder', 'verifier', 'embeddings'].includes(name)),
];

/**
 * Load the sentence encoders (the cache's, and the runtime's default the presets score with)
 * before the first request instead of during it: a cold load is a second or two of work, some of
 * it on the event loop.
 */
export async function warmUp(runtime: Runtime, cache: ResponseCache | undefined): Promise<void> {
  // The default tokenizer's tables too (tens of milliseconds of module evaluation).
  await builtinTokenizer('gpt-tokenizer')('o200k_base');
  const embedders = new Map<string, Embedder>();
  for (const embedder of [cache?.embedder, runtime.defaultEmbedder()]) if (embedder) embedders.set(embedder.id, embedder);
  for (const embedder of embedders.values()) {
    await (cache?.embedder === embedder ? cache.embeddings : runtime.embeddings).embed(embedder, ['warm up']).catch((error: unknown) => {
      process.stderr.write(
        `context-compactor: the ${embedder.id} encoder failed to load (${(error as Error).message}); requests go on with BM25 and the exact cache layer\n`,
      );
    });
  }
}

/** `context-compactor serve`: the proxy on embedded defaults, or a config file, until SIGTERM. */
export async function serveCommand(flags: ServeFlags): Promise<void> {
  const config: RouteTableOptions & { proxy?: ProxyConfig } = flags.config ? await loadConfig(flags.config) : {};
  if (config.proxy !== undefined && (typeof config.proxy !== 'object' || config.proxy === null || Array.isArray(config.proxy)))
    invalidOption('proxy', 'an object', config.proxy);
  const proxyConfig = config.proxy ?? {};
  rejectUnknownKeys(proxyConfig, PROXY_CONFIG_KEYS, 'proxy');
  if (proxyConfig.cache !== undefined && (typeof proxyConfig.cache !== 'object' || proxyConfig.cache === null))
    invalidOption('proxy.cache', 'an object', proxyConfig.cache);
  rejectUnknownKeys(proxyConfig.cache ?? {}, CACHE_CONFIG_KEYS, 'proxy.cache');
  if (proxyConfig.port !== undefined && (!Number.isInteger(proxyConfig.port) || proxyConfig.port < 0 || proxyConfig.port > 65535))
    invalidOption('proxy.port', 'a port number from 0 to 65535', proxyConfig.port);
  if (proxyConfig.host !== undefined && (typeof proxyConfig.host !== 'string' || proxyConfig.host === ''))
    invalidOption('proxy.host', 'a host name or address', proxyConfig.host);
  // Each URL is checked under the name it was given by: a flag, the config, or the environment.
  const upstream =
    flags.upstream !== undefined
      ? httpUrl('--upstream', flags.upstream)
      : proxyConfig.upstream !== undefined
        ? httpUrl('proxy.upstream', proxyConfig.upstream)
        : process.env.OPENAI_BASE_URL
          ? httpUrl('OPENAI_BASE_URL', process.env.OPENAI_BASE_URL).replace(/\/v1\/?$/, '')
          : 'https://api.openai.com';
  const anthropicUpstream =
    flags.anthropicUpstream !== undefined
      ? httpUrl('--anthropic-upstream', flags.anthropicUpstream)
      : proxyConfig.anthropicUpstream !== undefined
        ? httpUrl('proxy.anthropicUpstream', proxyConfig.anthropicUpstream)
        : 'https://api.anthropic.com';
  const { store: storeName = 'memory', redisUrl, ...cacheOptions } = proxyConfig.cache ?? {};
  const chosenStore = flags.cache ?? storeName;
  if (!['memory', 'redis', 'off'].includes(chosenStore))
    invalidOption(flags.cache !== undefined ? '--cache' : 'proxy.cache.store', '"memory", "redis" or "off"', chosenStore);
  const chosenRedisUrl = flags.redisUrl ?? redisUrl ?? process.env.REDIS_URL;
  // With Redis, instances share the cache's entries and, through the runtime, embeddings and summaries.
  const shared =
    chosenStore === 'redis'
      ? underPath(flags.redisUrl !== undefined ? '--' : 'proxy.cache.', () =>
          redisStore({
            url: chosenRedisUrl,
            // Said once per change: while Redis is down the cache is bypassed at no wait, and it reconnects in the background.
            onConnectionChange: (connected, error) =>
              process.stderr.write(
                connected
                  ? 'context-compactor: Redis is reachable again; the cache is back\n'
                  : `context-compactor: Redis is unreachable (${error?.message ?? 'no connection'}); serving without the cache and reconnecting in the background\n`,
              ),
          }),
        )
      : undefined;
  const runtime = shared ? createRuntime({ store: shared }) : defaultRuntime();
  const cache =
    chosenStore === 'off'
      ? undefined
      : underPath('proxy.cache.', () => createResponseCache({ ...cacheOptions, store: shared ?? memoryStore(), embeddings: runtime.embeddings }));
  await warmUp(runtime, cache);
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
          const shorthand = rule.strategy ?? rule.preset;
          if (flags.preset === undefined && shorthand !== undefined) options.strategy = shorthand;
          return { ...rule, strategy: undefined, preset: undefined, options };
        }),
      },
      cache,
    ),
  );
  const passed: Partial<ProxyOptions> = {};
  for (const name of JSON_PROXY_OPTIONS) if (proxyConfig[name] !== undefined) (passed as Record<string, unknown>)[name] = proxyConfig[name];
  const proxy = underPath('proxy.', () =>
    createProxy({
      ...passed,
      ...(flags.cacheHints === false ? { cacheHints: false } : {}),
      routes: table,
      cache: cache ?? false,
      runtime,
      upstream,
      anthropicUpstream,
      ...(process.env.OPENAI_API_KEY ? { apiKey: process.env.OPENAI_API_KEY } : {}),
      ...(process.env.ANTHROPIC_API_KEY ? { anthropicApiKey: process.env.ANTHROPIC_API_KEY } : {}),
    }),
  );
  const host = flags.host ?? proxyConfig.host ?? '127.0.0.1';
  const port = await underPath(flags.upstream !== undefined ? '--' : 'proxy.', () => proxy.listen(flags.port ?? proxyConfig.port ?? 8787, host));
  process.stderr.write(
    `context-compactor proxy listening on http://${host}:${port} (budget ${overrides.maxInputTokens ?? config.defaults?.maxInputTokens ?? DEFAULT_PROXY_BUDGET}, cache ${chosenStore}); POST /v1/chat/completions, /v1/responses, /v1/messages; GET /metrics, /healthz\n`,
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
