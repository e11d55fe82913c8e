import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { ResponseCache } from '../cache/response-cache.js';
import type { Store } from '../stores/types.js';
import type { RouteTable, RouteTableOptions } from '../compose/routes.js';
import { checkedByFactory, defineOptions, rules } from '../core/define-options.js';
import { invalidOption } from '../core/errors.js';
import { LARGE_BODY_BYTES } from '../core/turns.js';
import type { PriceTable } from '../prices.js';
import type { Runtime } from '../runtime.js';
import type { ProxyKey, TenantSource } from './auth.js';

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
  /**
   * API key sent upstream for callers that authenticated with a proxy key and sent no credential
   * of their own. Holding one requires `keys` (or `allowUnauthenticated`).
   */
  apiKey?: string;
  /** Anthropic API key, as `apiKey`. */
  anthropicApiKey?: string;
  /**
   * Keys callers present to the proxy itself (as a Bearer token, `x-api-key`, or `x-compactor-key`
   * next to a credential of their own), each with an optional tenant and per-window limits of
   * requests and tokens: over them, a 429 `rate.limited` with `retry-after`. With keys set, a
   * request without a valid one gets a 401 `unauthorized`.
   * @default []
   */
  keys?: ProxyKey[];
  /**
   * Serve callers that present neither a proxy key nor a credential of their own although the
   * proxy holds an upstream key: anyone who can reach the port spends it. For a private network only.
   * @default false
   */
  allowUnauthenticated?: boolean;
  /**
   * What divides a caller's cache scope: the body's `user` (Anthropic: `metadata.user_id`), a
   * header (`header:x-end-user`), `none`, or a function of the request and its body. The scope
   * itself always comes from the credentials (the proxy key's tenant, and a fingerprint of the
   * caller's own upstream key), so no value a caller sends reaches another caller's entries.
   * @default 'user'
   */
  tenant?: TenantSource | ((request: IncomingMessage, body: unknown) => string | undefined);
  /**
   * A caller's own upstream key gets cached answers only if the upstream accepted it within this
   * many milliseconds; until then its requests go upstream (and their answers are still stored).
   * A revoked key stops getting cached answers once this passes.
   * @default 300000 (5 minutes)
   */
  credentialTtlMs?: number;
  /**
   * Where replicas behind one load balancer share each proxy key's rate-limit windows and which
   * callers' own keys the upstream accepted, so two proxies grant a key its limits once between
   * them. It needs a store with `increment` (`redisStore()`). `false`: each proxy counts alone.
   * When the store fails, a proxy counts on its own for that request, and the failure is counted.
   * @default the response cache's store when it is shared (not in memory), else none
   */
  sharedStore?: Store | false;
  /**
   * Requests relayed untouched besides the compacted endpoints, as "METHOD /path" with `*`
   * wildcards (`"GET /v1/models"`, `"POST /v1/embeddings"`, `"* /v1/files*"`). Anything else is a
   * 404 `not-found`: the proxy is no open relay for its key. These add to the default relays (see `omitDefaultRelays`).
   * @default []
   */
  passThrough?: string[];
  /**
   * Leave out `DEFAULT_RELAYS`, the endpoints clients call on day one that carry no conversation:
   * the model list, Anthropic's token count, and the Responses API's compaction, retrieval,
   * cancellation and input-token count. They are authenticated like every request and relayed
   * untouched.
   * @default false
   */
  omitDefaultRelays?: boolean;
  /**
   * Bodies larger than this many bytes are heavy: at most `heavyConcurrency` of them are parsed and
   * compacted at a time, so they cannot starve small requests and `/healthz`.
   * @default 262144 (256 KiB)
   */
  heavyBodyBytes?: number;
  /** Heavy requests compacted at once; the rest wait their turn. @default 1 */
  heavyConcurrency?: number;
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
   * Provider cache hints: Anthropic `cache_control` breakpoints (at most 4, on the last messages
   * of the stable prefix) and OpenAI's `prompt_cache_key` (for models the price table knows as
   * OpenAI's). `'auto'` adds them only for the providers' own APIs (`api.openai.com`,
   * `api.anthropic.com`), which accept them; any other upstream (Azure, vLLM, a strict
   * OpenAI-compatible server) gets the body with nothing added. `true` adds them everywhere,
   * `false` nowhere (`serve --no-cache-hints`).
   * @default 'auto'
   */
  cacheHints?: 'auto' | boolean;
  /**
   * Milliseconds a request's body may take to arrive in full, from its headers; then 408
   * (`input.timeout`) and the connection is closed. Headers themselves must arrive within 30 s.
   * @default 60000
   */
  bodyTimeoutMs?: number;
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
  /**
   * Milliseconds clock of the credential TTL and the keys' rate and token windows; injected in tests.
   * @default Date.now
   */
  clock?: () => number;
}

export const PROXY_DEFAULTS = {
  upstream: 'https://api.openai.com',
  anthropicUpstream: 'https://api.anthropic.com',
  maxBodyBytes: 4 * 1024 * 1024,
  upstreamTimeoutMs: 120_000,
  bodyTimeoutMs: 60_000,
  cacheHints: 'auto' as 'auto' | boolean,
  streamIdleTimeoutMs: 60_000,
  logContent: false,
  allowUnauthenticated: false,
  tenant: 'user' as TenantSource,
  credentialTtlMs: 300_000,
  passThrough: [] as string[],
  omitDefaultRelays: false,
  heavyBodyBytes: LARGE_BODY_BYTES,
  heavyConcurrency: 1,
};

/**
 * The budget the proxy applies when given no routes. It saves money on any conversation longer
 * than a few dozen turns, not only on ones that overflow the window: at 8,000 tokens the default
 * preset saves 16–35% of the prompt bill on the shipped replay set and keeps 0.77–0.90 of the
 * evidence turns, depending on the provider's cache price (bench/RESULTS.md).
 */
export const DEFAULT_PROXY_BUDGET = 8000;

/** The options a JSON config file's `proxy` section passes to `createProxy` as they are. */
export const JSON_PROXY_OPTIONS = [
  'maxBodyBytes',
  'upstreamTimeoutMs',
  'bodyTimeoutMs',
  'cacheHints',
  'streamIdleTimeoutMs',
  'keys',
  'allowUnauthenticated',
  'tenant',
  'credentialTtlMs',
  'passThrough',
  'omitDefaultRelays',
  'heavyBodyBytes',
  'heavyConcurrency',
] as const satisfies readonly (keyof ProxyOptions)[];

/** Every option `createProxy` takes. */
export const PROXY_OPTION_NAMES: readonly (keyof ProxyOptions)[] = [
  ...JSON_PROXY_OPTIONS,
  'upstream',
  'anthropicUpstream',
  'apiKey',
  'anthropicApiKey',
  'routes',
  'cache',
  'sharedStore',
  'logger',
  'logContent',
  'runtime',
  'prices',
  'clock',
];

export const PROXY_OPTIONS = defineOptions<ProxyOptions, typeof PROXY_DEFAULTS>({
  factory: 'createProxy',
  defaults: PROXY_DEFAULTS,
  rules: {
    ...checkedByFactory<ProxyOptions>(PROXY_OPTION_NAMES),
    cacheHints: rules.either(rules.oneOf('auto'), rules.boolean),
    omitDefaultRelays: rules.boolean,
    sharedStore: {
      expected: 'a Store with increment (redisStore()) or false',
      test: (value) => value === false || (typeof value === 'object' && value !== null && typeof (value as Store).increment === 'function'),
      invalid: {},
    },
    clock: rules.function,
  },
  docs: [['src/proxy/options.ts', 'ProxyOptions']],
});

/** Pino redaction paths: anything that can carry a key, wherever a log call puts it. */
export const REDACT_PATHS = [
  'authorization',
  'apiKey',
  'key',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["api-key"]',
  'headers["x-compactor-key"]',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["api-key"]',
  'req.headers["x-compactor-key"]',
  '*.authorization',
  '*.apiKey',
  '*["x-api-key"]',
  '*["api-key"]',
];

/** An http(s) URL, or `options.invalid` naming `option` (a flag, a config key, an environment variable). */
export function httpUrl(option: string, value: unknown): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) invalidOption(option, 'an http:// or https:// URL', value);
  return value as string;
}

/** A pass-through entry ("GET /v1/models", "* /v1/files*") as a matcher. */
export type ProxySettings = ReturnType<typeof PROXY_OPTIONS.parse>;

/** `createProxy`'s options, validated once: unknown keys, ranges, URLs and the pass-through list. */
export function resolveProxyOptions(options: ProxyOptions): { settings: ProxySettings } {
  if (typeof options !== 'object' || options === null) invalidOption('options', 'an object', options);
  const settings = PROXY_OPTIONS.parse(options);
  for (const name of ['upstream', 'anthropicUpstream'] as const) httpUrl(name, settings[name]);
  for (const name of [
    'maxBodyBytes',
    'upstreamTimeoutMs',
    'bodyTimeoutMs',
    'streamIdleTimeoutMs',
    'credentialTtlMs',
    'heavyBodyBytes',
    'heavyConcurrency',
  ] as const) {
    if (!Number.isInteger(settings[name]) || settings[name] < 1) invalidOption(name, 'an integer >= 1', settings[name]);
  }
  for (const name of ['apiKey', 'anthropicApiKey'] as const)
    if (settings[name] !== undefined && (typeof settings[name] !== 'string' || settings[name] === '')) invalidOption(name, 'a non-empty string', '[redacted]');
  if (typeof settings.allowUnauthenticated !== 'boolean') invalidOption('allowUnauthenticated', 'a boolean', settings.allowUnauthenticated);
  if (!Array.isArray(settings.passThrough)) invalidOption('passThrough', 'an array of "METHOD /path" strings', settings.passThrough);
  if (typeof settings.omitDefaultRelays !== 'boolean') invalidOption('omitDefaultRelays', 'a boolean', settings.omitDefaultRelays);
  return { settings };
}
