import { CompactorError } from './errors.js';

/**
 * Waits for `promise` at most `ms` milliseconds (then `upstream.failed`, naming `what`), or until
 * `signal` aborts (then `aborted`). The promise itself is not cancelled: its work can go on, for
 * instance to warm a cache for the next request.
 */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CompactorError('upstream.failed', `${what} exceeded its ${ms} ms deadline`)), ms);
        onAbort = () => reject(new CompactorError('aborted', 'the operation was aborted', { cause: signal?.reason }));
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}
