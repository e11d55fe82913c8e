import { CompactorError } from '../core/errors.js';

/**
 * Coalescing: the first miss of an exact key is in flight until it commits or is released;
 * identical lookups meanwhile wait for it, then read the exact layer again.
 */
export function createCoalescer(coalesceMs: number) {
  const inflight = new Map<string, { done: Promise<void>; settle: () => void; timer: NodeJS.Timeout }>();
  function claim(exactKey: string): void {
    if (coalesceMs === 0 || inflight.has(exactKey)) return;
    let settle!: () => void;
    const done = new Promise<void>((resolve) => (settle = resolve));
    // Released by itself if its owner never commits nor releases (an adapter that forgot).
    const timer = setTimeout(() => releaseKey(exactKey), coalesceMs);
    timer.unref?.();
    inflight.set(exactKey, { done, settle, timer });
  }
  function releaseKey(exactKey: string): void {
    const entry = inflight.get(exactKey);
    if (!entry) return;
    inflight.delete(exactKey);
    clearTimeout(entry.timer);
    entry.settle();
  }
  async function waitFor(exactKey: string, signal: AbortSignal | undefined): Promise<boolean> {
    const entry = inflight.get(exactKey);
    if (!entry) return false;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    await Promise.race([
      entry.done,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, coalesceMs);
      }),
      new Promise<void>((resolve) => {
        onAbort = resolve;
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    if (signal?.aborted) throw new CompactorError('aborted', 'the operation was aborted', { cause: signal.reason });
    return true;
  }
  return { claim, release: releaseKey, waitFor, inFlight: (exactKey: string) => inflight.has(exactKey) };
}
