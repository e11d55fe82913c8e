import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { CompactorError, invalidOption, rejectUnknownKeys } from '../core/errors.js';
import type { Store } from '../stores/types.js';
import { createWindows } from './limits.js';

/**
 * Who is calling the proxy, and whether it may: proxy keys with their tenants and limits, the
 * caller's own upstream credentials, and the tenant every cache scope is built from.
 */

/** A key callers present to the proxy itself. */
export interface ProxyKey {
  /** The key, as callers send it. Give this or `sha256`. */
  key?: string;
  /** The key's SHA-256, in hex, to keep the key itself out of the config file. */
  sha256?: string;
  /** The tenant its requests belong to. @default 'key:' and the start of the key's hash */
  tenant?: string;
  /** Most requests per window. @default no limit */
  requests?: number;
  /** Most prompt tokens sent upstream (after compaction) per window. @default no limit */
  tokens?: number;
  /** Window of `requests` and `tokens`, in milliseconds. @default 60000 */
  windowMs?: number;
  /** Forward this key's requests uncompacted (the cache still applies), as `x-compactor-compact: off` does per request. @default false */
  skipCompaction?: boolean;
  /** `shadow`: this key's requests go as they came, and the proxy reports what compaction and the cache would have saved. @default the route's mode */
  mode?: 'enforce' | 'shadow';
}

/**
 * Where the part of the tenant that the caller chooses comes from, inside the scope its
 * credentials give it: `none`, the request body's `user` field (`metadata.user_id` for Anthropic),
 * or a header (`header:x-end-user`). A caller can only divide its own scope, never reach another's.
 */
export type TenantSource = 'none' | 'user' | `header:${string}`;

/** The headers a caller's upstream credential can come in. */
export const CREDENTIAL_HEADERS = ['authorization', 'x-api-key', 'api-key'] as const;
/** The header a caller presents a proxy key in when it also sends its own upstream credential. */
export const PROXY_KEY_HEADER = 'x-compactor-key';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function headerValue(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return typeof text === 'string' && text.length > 0 ? text : undefined;
}

/** The caller's credential: `Authorization: Bearer`, `x-api-key` (Anthropic) or `api-key` (Azure). */
/** Query parameters that carry a credential (Azure takes `api-key`; Google-style APIs `key`). */
export const CREDENTIAL_PARAMETERS = ['api-key', 'api_key', 'apikey', 'key', 'access_token'] as const;

export function credentialOf(request: IncomingMessage): { header: (typeof CREDENTIAL_HEADERS)[number] | 'query'; value: string } | undefined {
  const authorization = headerValue(request, 'authorization');
  if (authorization !== undefined) {
    const match = /^bearer\s+(.+)$/i.exec(authorization.trim());
    return { header: 'authorization', value: match ? match[1]!.trim() : authorization.trim() };
  }
  for (const header of ['x-api-key', 'api-key'] as const) {
    const value = headerValue(request, header);
    if (value !== undefined) return { header, value: value.trim() };
  }
  // A credential in the query string goes upstream with the URL: it is the caller's own, and part of its tenant.
  const query = (request.url ?? '').indexOf('?');
  if (query >= 0) {
    const parameters = new URLSearchParams((request.url ?? '').slice(query + 1));
    for (const name of CREDENTIAL_PARAMETERS) {
      const value = parameters.get(name);
      if (value) return { header: 'query', value };
    }
  }
  return undefined;
}

/** A short, non-reversible name for a credential (never the credential itself). */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url').slice(0, 16);
}

interface KeyEntry {
  hash: Buffer;
  tenant: string;
  requests: number;
  tokens: number;
  windowMs: number;
  skipCompaction: boolean;
  mode: 'enforce' | 'shadow' | undefined;
}

/** Who a request comes from, once authenticated. */
export interface Caller {
  /** The proxy key's tenant, when the caller presented one. */
  keyTenant: string | undefined;
  /** The caller's own upstream credential's fingerprint, when it sent one (it goes upstream as is). */
  credential: string | undefined;
  /** True when the proxy's own upstream key is to be added (a proxy-key caller without a credential of its own). */
  useServerKey: boolean;
  /** Headers to leave out of the upstream request (the proxy key). */
  strip: string[];
  /** The proxy key says to forward its requests uncompacted. */
  skipCompaction: boolean;
  /** The proxy key's mode, when it sets one. */
  mode: 'enforce' | 'shadow' | undefined;
  /** The tenant the cache is scoped by, from the credentials alone (see `Access.tenant` for the whole). */
  base: string;
  /**
   * Reserve what the request will send upstream against its key's window, just before it is sent:
   * throws `rate.limited` when the window's tokens are already spent. The check and the charge are
   * one synchronous step, so of requests racing on one key at most one goes past the limit.
   */
  reserve(tokens: number): Promise<void>;
}

export interface AccessOptions {
  keys: ProxyKey[] | undefined;
  /** Whether the proxy holds upstream keys of its own. */
  holdsUpstreamKey: boolean;
  /** Accept callers with neither a proxy key nor a credential of their own although the proxy holds an upstream key. */
  allowUnauthenticated: boolean;
  tenant: TenantSource | ((request: IncomingMessage, body: unknown) => string | undefined);
  clock: () => number;
  /** Where replicas share rate-limit windows (see `createWindows`); undefined: this proxy counts alone. */
  store?: Store | undefined;
  /** The shared store failed, and this proxy counted a request on its own. */
  onFailure?: (error: unknown) => void;
}

/** Checks proxy keys, applies their limits and builds each request's tenant. */
export class Access {
  /** The keys by their SHA-256 in hex. */
  readonly #byHash: Map<string, KeyEntry>;
  readonly #windows: ReturnType<typeof createWindows>;
  readonly #options: AccessOptions;

  constructor(options: AccessOptions) {
    this.#options = options;
    this.#windows = createWindows({ clock: options.clock, store: options.store, onFailure: options.onFailure });
    if (options.keys !== undefined && !Array.isArray(options.keys))
      invalidOption('keys', 'an array of { key | sha256, tenant?, requests?, tokens?, windowMs? }', options.keys);
    const keys = (options.keys ?? []).map((entry, index) => {
      const at = `keys[${index}]`;
      if (typeof entry !== 'object' || entry === null) invalidOption(at, 'an object { key | sha256, tenant?, requests?, tokens?, windowMs? }', entry);
      rejectUnknownKeys(entry, ['key', 'sha256', 'tenant', 'requests', 'tokens', 'windowMs', 'skipCompaction', 'mode'], at);
      if (entry.mode !== undefined && entry.mode !== 'enforce' && entry.mode !== 'shadow') invalidOption(`${at}.mode`, '"enforce" or "shadow"', entry.mode);
      if (entry.skipCompaction !== undefined && typeof entry.skipCompaction !== 'boolean')
        invalidOption(`${at}.skipCompaction`, 'a boolean', entry.skipCompaction);
      if ((entry.key === undefined) === (entry.sha256 === undefined)) invalidOption(at, 'exactly one of "key" and "sha256"', entry);
      if (entry.key !== undefined && (typeof entry.key !== 'string' || entry.key.length < 8))
        invalidOption(`${at}.key`, 'a string of at least 8 characters', '[redacted]');
      if (entry.sha256 !== undefined && (typeof entry.sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(entry.sha256)))
        invalidOption(`${at}.sha256`, 'a SHA-256 in hex (64 characters)', entry.sha256);
      if (entry.tenant !== undefined && (typeof entry.tenant !== 'string' || entry.tenant.length === 0))
        invalidOption(`${at}.tenant`, 'a non-empty string', entry.tenant);
      for (const field of ['requests', 'tokens', 'windowMs'] as const) {
        const value = entry[field];
        if (value !== undefined && (!Number.isInteger(value) || value < 1)) invalidOption(`${at}.${field}`, 'an integer >= 1', value);
      }
      const hex = entry.sha256?.toLowerCase() ?? sha256(entry.key!);
      return {
        hash: Buffer.from(hex, 'hex'),
        tenant: entry.tenant ?? `key:${hex.slice(0, 16)}`,
        requests: entry.requests ?? Number.POSITIVE_INFINITY,
        tokens: entry.tokens ?? Number.POSITIVE_INFINITY,
        windowMs: entry.windowMs ?? 60_000,
        skipCompaction: entry.skipCompaction === true,
        mode: entry.mode,
      };
    });
    this.#byHash = new Map(keys.map((entry) => [entry.hash.toString('hex'), entry]));
    if (this.#byHash.size !== keys.length) invalidOption('keys', 'distinct keys (the same key is listed twice)', '[redacted]');
    if (options.holdsUpstreamKey && keys.length === 0 && !options.allowUnauthenticated) {
      invalidOption(
        'keys',
        'set when the proxy holds an upstream API key, so that only callers with a proxy key spend it (or set allowUnauthenticated: true to serve anyone who can reach the port)',
        undefined,
      );
    }
    const tenant = options.tenant;
    if (typeof tenant !== 'function' && tenant !== 'none' && tenant !== 'user' && !(typeof tenant === 'string' && /^header:[a-z0-9-]+$/i.test(tenant)))
      invalidOption('tenant', '"none", "user", "header:NAME" or a function', tenant);
  }

  /**
   * The key a secret is, by its SHA-256: a map lookup on the digest (what an attacker can time is
   * a lookup of a hash they cannot steer toward a stored one), confirmed by a constant-time compare.
   */
  #find(secret: string): KeyEntry | undefined {
    const hex = sha256(secret);
    const entry = this.#byHash.get(hex);
    return entry && timingSafeEqual(entry.hash, Buffer.from(hex, 'hex')) ? entry : undefined;
  }

  /**
   * Authenticate a request from its headers, before its body is read: throws `unauthorized` (no or
   * unknown proxy key where one is needed) or `rate.limited`.
   */
  async authenticate(request: IncomingMessage): Promise<Caller> {
    const strip: string[] = [];
    let entry: KeyEntry | undefined;
    let credential = credentialOf(request);
    const presented = headerValue(request, PROXY_KEY_HEADER);
    if (presented !== undefined) {
      entry = this.#find(presented.trim());
      strip.push(PROXY_KEY_HEADER);
      if (!entry) throw new CompactorError('unauthorized', `${PROXY_KEY_HEADER}: not a key of this proxy`, { pointer: PROXY_KEY_HEADER });
    } else if (credential && credential.header !== 'query' && this.#byHash.size > 0) {
      // A proxy key in the usual credential header: it stays here, and the proxy's own key goes upstream.
      entry = this.#find(credential.value);
      if (entry) {
        strip.push(credential.header);
        credential = undefined;
      }
    }
    if (this.#byHash.size > 0 && !entry) {
      throw new CompactorError('unauthorized', `this proxy needs a key of its own: send it as a Bearer token, in x-api-key, or in ${PROXY_KEY_HEADER}`, {
        pointer: 'authorization',
      });
    }
    if (!entry && !credential && this.#options.holdsUpstreamKey && !this.#options.allowUnauthenticated) {
      throw new CompactorError('unauthorized', 'no credentials', { pointer: 'authorization' });
    }
    const reserve = entry ? await this.#windows.admit(entry.hash.toString('hex').slice(0, 32), entry) : async () => undefined;
    const parts: string[] = [];
    if (entry) parts.push(entry.tenant);
    const fingerprinted = credential ? `cred:${fingerprint(credential.value)}` : undefined;
    if (fingerprinted) parts.push(fingerprinted);
    if (!entry && !credential) parts.push('anonymous');
    return {
      keyTenant: entry?.tenant,
      credential: fingerprinted,
      useServerKey: !credential,
      strip,
      skipCompaction: entry?.skipCompaction === true,
      mode: entry?.mode,
      base: parts.join('/'),
      reserve,
    };
  }

  /** The whole tenant of a request: its credentials' scope, divided by the configured source. */
  tenant(caller: Caller, request: IncomingMessage, body: unknown): string {
    const sub = this.#subTenant(request, body);
    return sub === undefined ? caller.base : `${caller.base}/sub:${fingerprint(sub)}`;
  }

  #subTenant(request: IncomingMessage, body: unknown): string | undefined {
    const source = this.#options.tenant;
    if (typeof source === 'function') return source(request, body) || undefined;
    if (source === 'user') {
      const record = (typeof body === 'object' && body !== null ? body : {}) as { user?: unknown; metadata?: { user_id?: unknown } };
      const user = typeof record.user === 'string' ? record.user : typeof record.metadata?.user_id === 'string' ? record.metadata.user_id : undefined;
      return user || undefined;
    }
    if (source.startsWith('header:')) return headerValue(request, source.slice('header:'.length).toLowerCase());
    return undefined;
  }
}

export { CredentialCheck } from './credentials.js';
