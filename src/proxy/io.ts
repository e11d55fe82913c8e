import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { readBody, type Reply } from '../adapters/exchange.js';
import { CompactorError } from '../core/errors.js';

/** The body length a request declares, or null (chunked, or none). */
export const declaredLength = (request: IncomingMessage): number | null =>
  request.headers['content-length'] === undefined ? null : Number(request.headers['content-length']);

export const header = (request: IncomingMessage, name: string): string | undefined => {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
};

/**
 * A request body in the clear: a body the caller compressed (gzip, deflate, br) is decoded, up to
 * the body limit, since the proxy reads it and sends on JSON of its own.
 */
export function decodedBody(bytes: Buffer, encoding: string | undefined, limit: number): Buffer {
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
export function retryAfter(error: CompactorError): Record<string, string> {
  const retryAfterMs = (error.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof retryAfterMs === 'number' ? { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) } : {};
}

/** Milliseconds a request's headers may take to arrive. */
export const HEADERS_TIMEOUT_MS = 30_000;

/**
 * A request's body, read within `timeoutMs` of the call: past it, `input.timeout` (408). A client
 * that goes away ends the read as `aborted`.
 */
export async function readBodyWithin(
  request: IncomingMessage,
  limit: number,
  declared: number | null,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Buffer> {
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
export function semaphore(limit: number): { acquire(signal: AbortSignal): Promise<() => void> } {
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

export function send(response: ServerResponse, reply: Reply, extra: Record<string, string> = {}): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  response.writeHead(reply.status, { ...reply.headers, ...extra, 'content-length': Buffer.byteLength(reply.body) });
  response.end(reply.body);
}

export async function writeChunk(response: ServerResponse, chunk: Uint8Array): Promise<void> {
  if (!response.write(chunk)) {
    // Backpressure: wait for the client to take what it has before reading more upstream.
    await Promise.race([once(response, 'drain'), once(response, 'close')]);
  }
}

/** An AbortController that fires when the client goes away before the response is finished. */
export function abortOnClientClose(response: ServerResponse): AbortController {
  const abort = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) abort.abort(new CompactorError('aborted', 'the client went away'));
  });
  return abort;
}
