import { sseCollector } from '../formats/sse.js';
import type { CachedResponse, FormatName } from '../formats/wire-format.js';

/** Collects a response (JSON or SSE) as it is relayed, up to a byte bound, for the cache. */
export interface Recorder {
  push(chunk: Uint8Array | string): void;
  /** The response is complete: store it if the cache takes it. */
  end(): void;
  /** The response was cut short: store nothing, and let identical requests waiting on it go ahead. */
  abandon(): void;
}

/** Largest response body collected for the cache. The cache applies its own, smaller, bound on what it stores. */
const MAX_RECORDED_BYTES = 8 * 1024 * 1024;

/**
 * A prepared request's `record`: only a 200 answer is recorded, and only when there is a miss to
 * fill (`commit`); anything else releases identical requests waiting on this one.
 */
export function recordOf(
  format: FormatName,
  commit: ((response: CachedResponse) => Promise<boolean>) | undefined,
  release: () => void,
): (status: number, contentType: string | null | undefined) => Recorder | undefined {
  return (status, contentType) => {
    if (commit && status === 200) return recorder(format, contentType, commit, release);
    release();
    return undefined;
  };
}

export function recorder(
  format: FormatName,
  contentType: string | null | undefined,
  commit: (response: CachedResponse) => Promise<boolean>,
  release: () => void,
): Recorder {
  const sse = (contentType ?? '').includes('text/event-stream') ? sseCollector() : undefined;
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  let overflow = false;
  let ended = false;
  return {
    push(chunk) {
      if (overflow) return;
      size += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
      if (size > MAX_RECORDED_BYTES) {
        overflow = true;
        return;
      }
      const piece = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      if (sse) sse.push(piece);
      else text += piece;
    },
    abandon() {
      ended = true;
      release();
    },
    end() {
      if (ended) return;
      ended = true;
      if (overflow) {
        release();
        return;
      }
      let response: CachedResponse;
      if (sse) response = { format, events: sse.events };
      else {
        try {
          response = { format, body: JSON.parse(text + decoder.decode()) };
        } catch {
          release();
          return;
        }
      }
      // A failed store is counted by the cache; the caller already has its answer.
      void commit(response).catch(() => undefined);
    },
  };
}

/** A body relayed chunk by chunk into `sink`; a stream cut short (or a reader that stopped) is abandoned, never stored. */
export async function* recorded(body: AsyncIterable<Uint8Array>, sink: Recorder): AsyncIterable<Uint8Array> {
  let complete = false;
  try {
    for await (const chunk of body) {
      sink.push(chunk);
      yield chunk;
    }
    complete = true;
    sink.end();
  } finally {
    // A stream cut short (or a reader that stopped) is never stored.
    if (!complete) sink.abandon();
  }
}
