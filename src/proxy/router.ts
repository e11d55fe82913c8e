import type { IncomingMessage } from 'node:http';
import { CompactorError, invalidOption } from '../core/errors.js';
import type { FormatName } from '../formats/wire-format.js';
import type { Caller } from './auth.js';
import { header } from './io.js';
import type { ProxySettings } from './options.js';
import { HOP_HEADER, type UpstreamTarget } from './upstream.js';

/** The endpoints the proxy compacts, with their `/metrics` label. */
export const ENDPOINTS: readonly { pattern: RegExp; format: FormatName; label: string }[] = [
  { pattern: /^\/(v1\/)?chat\/completions$/, format: 'openai', label: 'chat.completions' },
  { pattern: /^\/openai\/deployments\/[^/]+\/chat\/completions$/, format: 'openai', label: 'azure.chat.completions' },
  { pattern: /^\/v1\/messages$/, format: 'anthropic', label: 'messages' },
  { pattern: /^\/(v1\/)?responses$/, format: 'responses', label: 'responses' },
];

export const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '[::1]', '0.0.0.0', '::', '[::]']);
/** Most proxies a request may have gone through; past this it is taken for a loop. */
const MAX_HOPS = 8;

/**
 * A request path as the allow-list and the endpoints see it: percent-decoded, so an encoded
 * character cannot slip past a pattern. An encoded slash or backslash, or a dot segment, would
 * let a path mean one thing here and another upstream: `input.invalid`.
 */
export function decodedPath(raw: string): string {
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

function joinPath(basePath: string, path: string): string {
  const trimmed = basePath.replace(/\/+$/, '');
  // An upstream given as https://host/v1 and a request for /v1/… must not become /v1/v1/….
  if (trimmed.endsWith('/v1') && path.startsWith('/v1/')) return `${trimmed}${path.slice(3)}`;
  return `${trimmed}${path}`;
}

/** One provider behind the proxy: its wire format, origin and key. */
export interface Provider {
  format: FormatName;
  origin: string;
  authHeader: UpstreamTarget['authHeader'];
  apiKey: string | undefined;
  /** Whether this upstream gets provider cache hints (see `ProxyOptions.cacheHints`). */
  cacheHints: boolean;
}

/** The providers behind a proxy: OpenAI-compatible and Anthropic, each with its origin, key and cache hints. */
export function providersOf(settings: ProxySettings): Record<FormatName, Provider> {
  const hintsFor = (origin: string, official: string): boolean =>
    settings.cacheHints === 'auto' ? new URL(origin).hostname === official : settings.cacheHints;
  const openai: Provider = {
    format: 'openai',
    origin: settings.upstream,
    authHeader: 'authorization',
    apiKey: settings.apiKey,
    cacheHints: hintsFor(settings.upstream, 'api.openai.com'),
  };
  return {
    openai,
    // The Responses API goes to the OpenAI upstream, with its key.
    responses: { ...openai, format: 'responses' },
    anthropic: {
      format: 'anthropic',
      origin: settings.anthropicUpstream,
      authHeader: 'x-api-key',
      apiKey: settings.anthropicApiKey,
      cacheHints: hintsFor(settings.anthropicUpstream, 'api.anthropic.com'),
    },
  };
}

/** Where a request goes upstream: the provider's origin joined with the request's path and query. */
export function targetOf(provider: Provider, path: string, search: string, caller: Caller, hops: string, rewritten = false): UpstreamTarget {
  const url = new URL(provider.origin);
  url.pathname = joinPath(url.pathname, path);
  url.search = search;
  const target: UpstreamTarget = { url, authHeader: provider.authHeader, apiKey: caller.useServerKey ? provider.apiKey : undefined, strip: caller.strip, hops };
  return rewritten ? { ...target, rewritten: true } : target;
}

/**
 * Relayed untouched unless `omitDefaultRelays`. None carries a history to compact: a model list
 * (chat UIs and LangChain-style clients read it at start-up), Anthropic's token count, and the
 * Responses API's own compaction (`/responses/compact`, which Codex falls back to), retrieval,
 * deletion, cancellation and input-token count of a stored response.
 */
export const DEFAULT_RELAYS: readonly string[] = [
  'GET /v1/models',
  'GET /v1/models/*',
  'POST /v1/messages/count_tokens',
  'POST /v1/responses/compact',
  'POST /v1/responses/input_tokens',
  'GET /v1/responses/*',
  'DELETE /v1/responses/*',
  'POST /v1/responses/*/cancel',
];

export function passThroughRule(entry: unknown, index: number): (method: string, path: string) => boolean {
  const match = typeof entry === 'string' ? /^(\*|[A-Z]+)\s+(\/\S*)$/.exec(entry.trim()) : null;
  if (!match) invalidOption(`passThrough[${index}]`, 'a string "METHOD /path" (METHOD or *, and * in the path for any run of characters)', entry);
  const method = match[1]!;
  const path = new RegExp(`^${match[2]!.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  return (requestMethod, requestPath) => (method === '*' || method === requestMethod) && path.test(requestPath);
}

/** The pass-through rules of a proxy: the default relays (unless omitted), then its own list, each entry checked and named by its index. */
export function passThroughRules(settings: ProxySettings): ((method: string, path: string) => boolean)[] {
  return [
    ...(settings.omitDefaultRelays ? [] : DEFAULT_RELAYS.map((entry, index) => passThroughRule(entry, index))),
    ...settings.passThrough.map(passThroughRule),
  ];
}

/** What the proxy does with a method and path: compact it (an endpoint), relay it (pass-through), or refuse it. */
export function routeOf(method: string, path: string, passThrough: readonly ((method: string, path: string) => boolean)[]) {
  const endpoint = method === 'POST' ? ENDPOINTS.find((candidate) => candidate.pattern.test(path)) : undefined;
  const format: FormatName = endpoint?.format ?? (path.startsWith('/v1/messages') ? 'anthropic' : path.startsWith('/v1/responses') ? 'responses' : 'openai');
  const relayed = !endpoint && passThrough.some((allowed) => allowed(method, path));
  const label = endpoint?.label ?? (relayed ? 'passthrough' : 'unknown');
  return { endpoint, format, relayed, label };
}

/**
 * The hop header this proxy sends on, with its own instance appended; `loop.detected` when the
 * request already went through this instance or through more than MAX_HOPS proxies.
 */
export function hopsOf(request: IncomingMessage, instance: string): string {
  const seen = (header(request, HOP_HEADER) ?? '')
    .split(',')
    .map((hop) => hop.trim())
    .filter(Boolean);
  if (seen.includes(instance) || seen.length >= MAX_HOPS)
    throw new CompactorError('loop.detected', `the request came back to this proxy (${seen.length} hops): its upstream points at itself`);
  return [...seen, instance].join(', ');
}
