import type { IncomingMessage } from 'node:http';
import type { Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { Agent, request as undiciRequest, type Dispatcher } from 'undici';
import type { Upstream } from '../adapters/exchange.js';
import { CompactorError } from '../core/errors.js';
import { CREDENTIAL_HEADERS } from './auth.js';

/** Where a request goes, and the key the proxy adds when the caller sends none. */
export interface UpstreamTarget {
  url: URL;
  /** `authorization` (a Bearer token) or `x-api-key`. */
  authHeader: 'authorization' | 'x-api-key';
  /** The proxy's own key, to add: only for a caller with no credential of its own. */
  apiKey: string | undefined;
  /** Caller headers that stay here (a proxy key). */
  strip?: readonly string[];
  /** The hop header's value (the proxies this request went through, this one last). */
  hops?: string;
  /** The body is the proxy's own serialisation (a compacted request): plain JSON, whatever encoding the caller's had. */
  rewritten?: boolean;
}

/** The header each proxy appends its instance id to, so a request that comes back is refused. */
export const HOP_HEADER = 'x-compactor-hops';

/** An upstream's answer, with the headers to relay. */
export interface UpstreamResponse extends Upstream {
  headers: Record<string, string | string[]>;
}

export interface UpstreamOptions {
  /** Milliseconds to wait for the response headers; then `upstream.timeout`. */
  timeoutMs: number;
  /** Milliseconds a streamed body may stay silent; then `upstream.timeout`. */
  idleTimeoutMs: number;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'expect',
]);
/** Headers that ask a server to treat the request as another method: never relayed. */
const METHOD_OVERRIDES = new Set(['x-http-method-override', 'x-http-method', 'x-method-override']);

/** Encodings the proxy decodes (it asks for identity, but not every server listens). */
const DECODERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/** The caller's headers to send on: hop-by-hop and `x-compactor-*` stay behind, and the proxy's key fills in for a caller without one. */
function forwardedHeaders(request: IncomingMessage, target: UpstreamTarget): Record<string, string> {
  const headers: Record<string, string> = {};
  // Headers the caller named in Connection are hop-by-hop too (RFC 9110, 7.6.1).
  const connection = request.headers.connection;
  const named = new Set(
    (Array.isArray(connection) ? connection.join(',') : (connection ?? ''))
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
  for (const [name, value] of Object.entries(request.headers)) {
    // accept-encoding stays behind: the proxy reads (and caches) what it relays, so it asks for identity.
    if (
      HOP_BY_HOP.has(name) ||
      named.has(name) ||
      METHOD_OVERRIDES.has(name) ||
      name === 'accept-encoding' ||
      name.startsWith('x-compactor-') ||
      value === undefined
    )
      continue;
    // A body the proxy wrote itself is plain: it must not go out labelled with the caller's encoding.
    if (target.rewritten && name === 'content-encoding') continue;
    if (target.strip?.includes(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  // The proxy's key never joins a credential the caller sent itself, in whichever header.
  if (target.apiKey && CREDENTIAL_HEADERS.every((name) => headers[name] === undefined)) {
    headers[target.authHeader] = target.authHeader === 'authorization' ? `Bearer ${target.apiKey}` : target.apiKey;
  }
  if (target.hops) headers[HOP_HEADER] = target.hops;
  headers['accept-encoding'] = 'identity';
  return headers;
}

/**
 * The proxy's client for model APIs: one undici keep-alive pool (its `request()` costs a fraction
 * of `fetch()` per call: bench/notes/HISTORY.md, proxy load), a deadline on the response headers, and an
 * idle deadline on streamed bodies.
 */
export function createUpstream(options: UpstreamOptions): {
  send(request: IncomingMessage, target: UpstreamTarget, body: string | Buffer | null, abort: AbortController): Promise<UpstreamResponse>;
  close(): Promise<void>;
} {
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: null, headersTimeout: 0, bodyTimeout: 0 });

  /** The reason the request was aborted, as the error to report. */
  const failure = (abort: AbortController, error: unknown, what: string): CompactorError => {
    const reason = abort.signal.reason;
    if (CompactorError.isInstance(reason)) return reason;
    if (CompactorError.isInstance(error)) return error;
    if (abort.signal.aborted) return new CompactorError('aborted', 'the client went away', { cause: error });
    return new CompactorError('upstream.failed', `${what}: ${(error as Error).message}`, { cause: error });
  };

  async function* relayed(body: AsyncIterable<Uint8Array>, source: Dispatcher.ResponseData['body'], abort: AbortController): AsyncIterable<Uint8Array> {
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(
        () => abort.abort(new CompactorError('upstream.timeout', `upstream stream silent for ${options.idleTimeoutMs} ms`)),
        options.idleTimeoutMs,
      );
    };
    try {
      arm();
      for await (const chunk of body) {
        arm();
        yield chunk as Uint8Array;
      }
    } catch (error) {
      throw failure(abort, error, 'upstream stream broke');
    } finally {
      clearTimeout(idle);
      // Reached early when the caller stopped reading (it went away): release the connection.
      if (!source.readableEnded) source.destroy();
    }
  }

  return {
    async send(request, target, body, abort) {
      const timeout = setTimeout(
        () => abort.abort(new CompactorError('upstream.timeout', `upstream did not answer within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      let upstream: Dispatcher.ResponseData;
      try {
        upstream = await undiciRequest(target.url, {
          method: (request.method ?? 'POST') as Dispatcher.HttpMethod,
          headers: forwardedHeaders(request, target),
          body: request.method === 'GET' || request.method === 'HEAD' ? null : body,
          signal: abort.signal,
          dispatcher: agent,
        });
      } catch (error) {
        throw failure(abort, error, 'upstream unreachable');
      } finally {
        clearTimeout(timeout);
      }
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(upstream.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
      const contentType = upstream.headers['content-type'];
      // A body encoded although the proxy asked for identity is decoded, so what it relays and
      // caches is what its headers say; an encoding it cannot decode is relayed with its header.
      const encoding = String(upstream.headers['content-encoding'] ?? 'identity')
        .trim()
        .toLowerCase();
      let decoded: AsyncIterable<Uint8Array> = upstream.body;
      if (encoding === 'identity' || encoding === '') delete headers['content-encoding'];
      else if (DECODERS[encoding]) {
        delete headers['content-encoding'];
        const decoder = DECODERS[encoding]();
        upstream.body.on('error', (error) => decoder.destroy(error));
        decoded = upstream.body.pipe(decoder);
      }
      return {
        status: upstream.statusCode,
        headers,
        contentType: Array.isArray(contentType) ? contentType[0] : contentType,
        body: relayed(decoded, upstream.body, abort),
      };
    },
    close: () => agent.close().catch(() => undefined),
  };
}
