import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { asCompactorError, errorReply, exchange, readBody, type ExchangeResult, type Reply } from '../adapters/exchange.js';
import type { ResponseCache } from '../cache/response-cache.js';
import { CompactorError, invalidOption } from '../core/errors.js';
import { checkedByFactory, defineOptions, rules } from '../core/define-options.js';
import { DEFAULT_PRESET } from '../../strategies/presets.js';
import type { CompactionStats } from '../core/stats.js';
import { LARGE_BODY_BYTES } from '../core/turns.js';
import { createRouteTable, isRouteTable, withSharedCache, type RouteTable, type RouteTableOptions } from '../compose/routes.js';
import { FORMATS } from '../formats/registry.js';
import type { FormatName } from '../formats/wire-format.js';
import { defaultRuntime, type Runtime } from '../runtime.js';
import { ProxyMetrics } from './metrics.js';
import { PRICES, type PriceTable } from '../prices.js';
import { Access, CredentialCheck, type Caller, type ProxyKey, type TenantSource } from './auth.js';
import { createUpstream, HOP_HEADER, type UpstreamResponse, type UpstreamTarget } from './upstream.js';

export type { Caller, ProxyKey, TenantSource } from './auth.js';

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
   * Requests relayed untouched besides the compacted endpoints, as "METHOD /path" with `*`
   * wildcards (`"GET /v1/models"`, `"POST /v1/embeddings"`, `"* /v1/files*"`). Anything else is a
   * 404 `not-found`: the proxy is no open relay for its key.
   * @default []
   */
  passThrough?: string[];
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
  /** `close()` with its default drain. */
  [Symbol.asyncDispose](): Promise<void>;
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
  'logger',
  'logContent',
  'runtime',
  'prices',
];

export const PROXY_OPTIONS = defineOptions<ProxyOptions, typeof PROXY_DEFAULTS>({
  factory: 'createProxy',
  defaults: PROXY_DEFAULTS,
  rules: { ...checkedByFactory<ProxyOptions>(PROXY_OPTION_NAMES), cacheHints: rules.either(rules.oneOf('auto'), rules.boolean) },
  docs: [['src/proxy/server.ts', 'ProxyOptions']],
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

/** The endpoints the proxy compacts, with their `/metrics` label. */
const ENDPOINTS: readonly { pattern: RegExp; format: FormatName; label: string }[] = [
  { pattern: /^\/(v1\/)?chat\/completions$/, format: 'openai', label: 'chat.completions' },
  { pattern: /^\/openai\/deployments\/[^/]+\/chat\/completions$/, format: 'openai', label: 'azure.chat.completions' },
  { pattern: /^\/v1\/messages$/, format: 'anthropic', label: 'messages' },
];

/** A pass-through entry ("GET /v1/models", "* /v1/files*") as a matcher. */
function passThroughRule(entry: unknown, index: number): (method: string, path: string) => boolean {
  const match = typeof entry === 'string' ? /^(\*|[A-Z]+)\s+(\/\S*)$/.exec(entry.trim()) : null;
  if (!match) invalidOption(`passThrough[${index}]`, 'a string "METHOD /path" (METHOD or *, and * in the path for any run of characters)', entry);
  const method = match[1]!;
  const path = new RegExp(`^${match[2]!.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  return (requestMethod, requestPath) => (method === '*' || method === requestMethod) && path.test(requestPath);
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '[::1]', '0.0.0.0', '::', '[::]']);
/** Most proxies a request may have gone through; past this it is taken for a loop. */
const MAX_HOPS = 8;

/** The body length a request declares, or null (chunked, or none). */
const declaredLength = (request: IncomingMessage): number | null =>
  request.headers['content-length'] === undefined ? null : Number(request.headers['content-length']);

const header = (request: IncomingMessage, name: string): string | undefined => {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
};

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

/**
 * A request path as the allow-list and the endpoints see it: percent-decoded, so an encoded
 * character cannot slip past a pattern. An encoded slash or backslash, or a dot segment, would
 * let a path mean one thing here and another upstream: `input.invalid`.
 */
function decodedPath(raw: string): string {
  if (/%(2f|5c)/i.test(raw)) throw new CompactorError('input.invalid', 'path: an encoded "/" or "\\" is not accepted', { pointer: 'path' });
  let path: string;
  try {
    path = decodeURIComponent(raw);
  } catch {
    throw new CompactorError('input.invalid', 'path: is not valid percent-encoding', { pointer: 'path' });
  }
  if (path.split('/').some((segment) => segment === '.' || segment === '..') || path.includes('\\') || path.includes('\0'))
    throw new CompactorError('input.invalid', 'path: dot segments and backslashes are not accepted', { pointer: 'path' });
  return path;
}

/**
 * A request body in the clear: a body the caller compressed (gzip, deflate, br) is decoded, up to
 * the body limit, since the proxy reads it and sends on JSON of its own.
 */
function decodedBody(bytes: Buffer, encoding: string | undefined, limit: number): Buffer {
  const name = (encoding ?? 'identity').trim().toLowerCase();
  if (name === '' || name === 'identity') return bytes;
  const decode = { gzip: gunzipSync, 'x-gzip': gunzipSync, deflate: inflateSync, br: brotliDecompressSync }[name];
  if (!decode)
    throw new CompactorError('input.invalid', `content-encoding: ${name.slice(0, 40)} is not supported (gzip, deflate, br or identity)`, {
      pointer: 'content-encoding',
    });
  try {
    return decode(bytes, { maxOutputLength: limit });
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
      throw new CompactorError('input.too-large', `body: over the limit of ${limit} bytes once decoded`, { pointer: 'body' });
    throw new CompactorError('input.invalid', `body: is not valid ${name}`, { pointer: 'body' });
  }
}

/** The `retry-after` header of a `rate.limited` error (none for other errors). */
function retryAfter(error: CompactorError): Record<string, string> {
  const retryAfterMs = (error.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof retryAfterMs === 'number' ? { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) } : {};
}

/** Milliseconds a request's headers may take to arrive. */
const HEADERS_TIMEOUT_MS = 30_000;

/**
 * A request's body, read within `timeoutMs` of the call: past it, `input.timeout` (408). A client
 * that goes away ends the read as `aborted`.
 */
async function readBodyWithin(request: IncomingMessage, limit: number, declared: number | null, timeoutMs: number, signal: AbortSignal): Promise<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const reading = readBody(request, limit, declared);
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CompactorError('input.timeout', `body: not received within ${timeoutMs} ms`, { pointer: 'body' })), timeoutMs);
    onAbort = () => reject(new CompactorError('aborted', 'the client went away'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([reading, stop]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort!);
    reading.catch(() => undefined);
  }
}

/** A counting semaphore: at most `limit` holders at once, the rest wait in order. */
function semaphore(limit: number): { acquire(signal: AbortSignal): Promise<() => void> } {
  let held = 0;
  const waiting: (() => void)[] = [];
  const releaser = (): (() => void) => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = waiting.shift();
      if (next) next();
      else held--;
    };
  };
  return {
    acquire(signal) {
      if (held < limit) {
        held++;
        return Promise.resolve(releaser());
      }
      return new Promise((resolve, reject) => {
        const turn = () => {
          signal.removeEventListener('abort', onAbort);
          resolve(releaser());
        };
        const onAbort = () => {
          const at = waiting.indexOf(turn);
          if (at >= 0) waiting.splice(at, 1);
          reject(new CompactorError('aborted', 'the client went away'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiting.push(turn);
      });
    },
  };
}

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
  /** Whether this upstream gets provider cache hints (see `ProxyOptions.cacheHints`). */
  cacheHints: boolean;
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
export function createProxy(options: ProxyOptions = {}): ProxyServer {
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
  const passThrough = settings.passThrough.map(passThroughRule);
  const clock = () => Date.now();
  const access = new Access({
    keys: settings.keys,
    holdsUpstreamKey: Boolean(settings.apiKey || settings.anthropicApiKey),
    allowUnauthenticated: settings.allowUnauthenticated,
    tenant: settings.tenant,
    clock,
  });
  const accepted = new CredentialCheck(settings.credentialTtlMs, clock);
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
  const hintsFor = (origin: string, official: string): boolean =>
    settings.cacheHints === 'auto' ? new URL(origin).hostname === official : settings.cacheHints;
  const providers: Record<FormatName, Provider> = {
    openai: {
      format: 'openai',
      origin: settings.upstream,
      authHeader: 'authorization',
      apiKey: settings.apiKey,
      cacheHints: hintsFor(settings.upstream, 'api.openai.com'),
    },
    anthropic: {
      format: 'anthropic',
      origin: settings.anthropicUpstream,
      authHeader: 'x-api-key',
      apiKey: settings.anthropicApiKey,
      cacheHints: hintsFor(settings.anthropicUpstream, 'api.anthropic.com'),
    },
  };
  const active = new Set<Promise<void>>();
  let closing = false;

  const targetOf = (provider: Provider, path: string, search: string, caller: Caller, hops: string): UpstreamTarget => {
    const url = new URL(provider.origin);
    url.pathname = joinPath(url.pathname, path);
    url.search = search;
    return { url, authHeader: provider.authHeader, apiKey: caller.useServerKey ? provider.apiKey : undefined, strip: caller.strip, hops };
  };
  const rewrittenTarget = (provider: Provider, path: string, search: string, caller: Caller, hops: string): UpstreamTarget => ({
    ...targetOf(provider, path, search, caller, hops),
    rewritten: true,
  });

  /** The metrics label of a compacted request: its route rule's name, else its endpoint's. */
  const labelOf = (endpoint: string, path: string, stats: CompactionStats | undefined): string =>
    (stats && table.nameOf?.({ path, model: stats.model })) || endpoint;

  /** A compacted endpoint: authentication, cache, compaction, then the upstream. */
  async function handleCompletion(
    request: IncomingMessage,
    response: ServerResponse,
    provider: Provider,
    path: string,
    search: string,
    endpoint: string,
    caller: Caller,
    hops: string,
  ): Promise<void> {
    const started = performance.now();
    const abort = abortOnClientClose(response);
    let route = endpoint;
    let upstreamStarted = 0;
    const declared = declaredLength(request);
    // Cached answers go to a caller the proxy vouched for (a proxy key), or whose own key the upstream accepted lately.
    const serveFromCache = caller.keyTenant !== undefined || caller.credential === undefined || accepted.isFresh(caller.credential);
    let result: ExchangeResult<UpstreamResponse>;
    let release: () => void = () => undefined;
    try {
      // The body is read in full (within bodyTimeoutMs) before any shared slot is taken: a slow or
      // stalled upload holds nothing but its own connection.
      const bytes = decodedBody(
        await readBodyWithin(request, settings.maxBodyBytes, declared, settings.bodyTimeoutMs, abort.signal),
        header(request, 'content-encoding'),
        settings.maxBodyBytes,
      );
      // A heavy body waits its turn to be parsed and compacted, so a few large requests cannot hold the event loop for everyone.
      if (bytes.byteLength > settings.heavyBodyBytes) release = await heavy.acquire(abort.signal);
      result = await exchange(
        {
          body: [bytes],
          contentLength: bytes.byteLength,
          maxBodyBytes: settings.maxBodyBytes,
          compactor: table,
          format: provider.format,
          route: path,
          tenant: (body) => access.tenant(caller, request, body),
          serveFromCache,
          cacheHints: provider.cacheHints,
          signal: abort.signal,
          header: (name) => header(request, name),
          headers: true,
        },
        (body, prepared) => {
          release();
          route = labelOf(endpoint, path, prepared.stats);
          caller.reserve(prepared.stats.tokensAfter);
          metrics.overheadSeconds.observe({ route }, (performance.now() - started) / 1000);
          metrics.record(route, prepared.stats);
          if (settings.logContent) logger.debug({ route, messages: (prepared.request as { messages?: unknown }).messages }, 'compacted request');
          upstreamStarted = performance.now();
          return upstream.send(request, rewrittenTarget(provider, path, search, caller, hops), body, abort).then((answer) => {
            if (caller.credential) accepted.observe(caller.credential, answer.status);
            return answer;
          });
        },
      );
    } catch (error) {
      const failure = asCompactorError(error);
      result = { kind: 'reply', reply: errorReply(failure, provider.format, failure.code === 'input.timeout' ? { connection: 'close' } : {}), error: failure };
    } finally {
      release();
    }
    route = labelOf(endpoint, path, result.stats);
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
        send(response, result.reply, failure ? retryAfter(failure) : {});
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

  /** A path on the pass-through list: relayed untouched to the provider it belongs to. */
  async function handlePassThrough(
    request: IncomingMessage,
    response: ServerResponse,
    provider: Provider,
    path: string,
    search: string,
    caller: Caller,
    hops: string,
  ): Promise<void> {
    const abort = abortOnClientClose(response);
    let status = 500;
    try {
      const body =
        request.method === 'GET' || request.method === 'HEAD'
          ? null
          : await readBodyWithin(request, settings.maxBodyBytes, declaredLength(request), settings.bodyTimeoutMs, abort.signal);
      const answer = await upstream.send(request, targetOf(provider, path, search, caller, hops), body, abort);
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
      if (!request.readableEnded) request.resume();
      const reply = errorReply(error, provider.format);
      status = reply.status;
      send(response, reply);
    } finally {
      metrics.requests.inc({ route: 'passthrough', status: String(status) });
    }
  }

  /** Answer with an error before the body is read (the rest of it is discarded). */
  function refuse(request: IncomingMessage, response: ServerResponse, error: CompactorError, format: FormatName, label: string): void {
    const extra = retryAfter(error);
    if (error.code === 'unavailable') extra.connection = 'close';
    request.resume();
    send(response, errorReply(error, format), extra);
    metrics.requests.inc({ route: label, status: String(error.status) });
    if (error.code !== 'unavailable') logger.info({ route: label, status: error.status, code: error.code, message: error.message }, 'request rejected');
  }

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
    if (method === 'GET' && path === '/healthz') {
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
    const endpoint = method === 'POST' ? ENDPOINTS.find((candidate) => candidate.pattern.test(path)) : undefined;
    const format: FormatName = endpoint?.format ?? (path.startsWith('/v1/messages') ? 'anthropic' : 'openai');
    const relayed = !endpoint && passThrough.some((allowed) => allowed(method, path));
    const label = endpoint?.label ?? (relayed ? 'passthrough' : 'unknown');
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
    const previous = header(request, HOP_HEADER) ?? '';
    const seen = previous
      .split(',')
      .map((hop) => hop.trim())
      .filter(Boolean);
    if (seen.includes(instance) || seen.length >= MAX_HOPS) {
      refuse(
        request,
        response,
        new CompactorError('loop.detected', `the request came back to this proxy (${seen.length} hops): its upstream points at itself`),
        format,
        label,
      );
      return;
    }
    const hops = [...seen, instance].join(', ');
    let caller: Caller;
    try {
      caller = access.authenticate(request);
    } catch (error) {
      refuse(request, response, CompactorError.isInstance(error) ? error : new CompactorError('internal', String(error)), format, label);
      return;
    }
    const provider = providers[format];
    const work = endpoint
      ? handleCompletion(request, response, provider, path, url.search, endpoint.label, caller, hops)
      : handlePassThrough(request, response, provider, path, url.search, caller, hops);
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
