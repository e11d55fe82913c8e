import { CompactorError } from '../errors.js';
import type { CompactionStats, Compactor } from '../compactor.js';
import type { CachedResponse } from '../cache/response-cache.js';
import { sseCollector } from '../cache/sse.js';
import { isRouteTable, type RouteTable } from '../routes.js';

/** OpenAI-style error body. */
export interface ErrorBody {
  error: { message: string; type: string; code: string; param: string | null };
}

/** Render any error as an OpenAI-style error body and status. Internal details stay hidden. */
export function toErrorBody(error: unknown): { status: number; body: ErrorBody } {
  if (CompactorError.isInstance(error)) {
    const type = error.status < 500 ? 'invalid_request_error' : 'server_error';
    return {
      status: error.status,
      body: { error: { message: error.expose ? error.message : 'internal error', type, code: error.code, param: error.pointer ?? null } },
    };
  }
  // body-parser's errors carry a `type` and a `status`.
  const parserType = (error as { type?: unknown } | null)?.type;
  if (parserType === 'entity.too.large') {
    return { status: 413, body: { error: { message: 'request body is too large', type: 'invalid_request_error', code: 'input.too-large', param: null } } };
  }
  if (parserType === 'entity.parse.failed') {
    return { status: 400, body: { error: { message: 'request body is not valid JSON', type: 'invalid_request_error', code: 'input.invalid', param: 'body' } } };
  }
  return { status: 500, body: { error: { message: 'internal error', type: 'server_error', code: 'internal', param: null } } };
}

export function selectCompactor(source: Compactor | RouteTable, path: string | undefined, body: unknown): Compactor {
  if (!isRouteTable(source)) return source;
  const model = typeof (body as { model?: unknown } | null)?.model === 'string' ? ((body as { model: string }).model) : undefined;
  return source.select({ path, model });
}

/** True when the caller asked not to be served from a cache: `Cache-Control: no-cache`/`no-store`, or `x-compactor-cache: bypass`. */
export function bypassRequested(header: (name: string) => string | null | undefined): boolean {
  const control = (header('cache-control') ?? '').toLowerCase();
  if (/(^|[\s,])no-(cache|store)($|[\s,=])/.test(control)) return true;
  return (header('x-compactor-cache') ?? '').trim().toLowerCase() === 'bypass';
}

/** The `x-compactor-*` response headers for a compaction. */
export function compactionHeaders(stats: CompactionStats): Record<string, string> {
  const headers: Record<string, string> = {
    'x-compactor-tokens-before': String(stats.tokensBefore),
    'x-compactor-tokens-after': String(stats.tokensAfter),
    'x-compactor-strategy': stats.strategies.map((step) => step.name).join(',') || 'none',
  };
  if (stats.cache) headers['x-compactor-cache'] = stats.cache.status;
  return headers;
}

/** Collects a response body (JSON or SSE) up to a byte bound, for the cache. */
export function responseCollector(contentType: string | null | undefined, format: 'openai' | 'anthropic', maxBytes = 2 * 1024 * 1024) {
  const streamed = (contentType ?? '').includes('text/event-stream');
  const sse = streamed ? sseCollector() : undefined;
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  let overflow = false;
  return {
    push(chunk: Uint8Array | string): void {
      if (overflow) return;
      size += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
      if (size > maxBytes) {
        overflow = true;
        return;
      }
      const piece = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      if (sse) sse.push(piece);
      else text += piece;
    },
    /** The response to store, or undefined when it cannot be (too large, not JSON). */
    finish(): CachedResponse | undefined {
      if (overflow) return undefined;
      if (sse) return { format, events: sse.events };
      try {
        return { format, body: JSON.parse(text + decoder.decode()) };
      } catch {
        return undefined;
      }
    },
  };
}
