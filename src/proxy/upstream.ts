import type { IncomingMessage } from 'node:http';
import { Agent, request as undiciRequest, type Dispatcher } from 'undici';
import type { Upstream } from '../adapters/exchange.js';
import { CompactorError } from '../core/errors.js';

/** Where a request goes, and the key the proxy adds when the caller sends none. */
export interface UpstreamTarget {
  url: URL;
  /** `authorization` (a Bearer token) or `x-api-key`. */
  authHeader: 'authorization' | 'x-api-key';
  apiKey: string | undefined;
}

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
// The proxy asks for identity encoding, so any encoding and length headers no longer describe what it relays.
const DROP_FROM_RESPONSE = new Set([...HOP_BY_HOP, 'content-encoding']);

/** The caller's headers to send on: hop-by-hop and `x-compactor-*` stay behind, and the proxy's key fills in for a caller without one. */
function forwardedHeaders(request: IncomingMessage, target: UpstreamTarget): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    // accept-encoding stays behind: the proxy reads (and caches) what it relays, so it asks for identity.
    if (HOP_BY_HOP.has(name) || name === 'accept-encoding' || name.startsWith('x-compactor-') || value === undefined) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  if (target.apiKey && headers.authorization === undefined && headers['x-api-key'] === undefined) {
    headers[target.authHeader] = target.authHeader === 'authorization' ? `Bearer ${target.apiKey}` : target.apiKey;
  }
  return headers;
}

/**
 * The proxy's client for model APIs: one undici keep-alive pool (its `request()` costs a fraction
 * of `fetch()` per call: bench/RESULTS.md, proxy load), a deadline on the response headers, and an
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

  async function* relayed(body: Dispatcher.ResponseData['body'], abort: AbortController): AsyncIterable<Uint8Array> {
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
      if (!body.readableEnded) body.destroy();
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
      for (const [name, value] of Object.entries(upstream.headers)) if (value !== undefined && !DROP_FROM_RESPONSE.has(name)) headers[name] = value;
      const contentType = upstream.headers['content-type'];
      return {
        status: upstream.statusCode,
        headers,
        contentType: Array.isArray(contentType) ? contentType[0] : contentType,
        body: relayed(upstream.body, abort),
      };
    },
    close: () => agent.close().catch(() => undefined),
  };
}
