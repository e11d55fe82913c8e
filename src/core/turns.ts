/**
 * Cooperative yielding for long synchronous work on the request path (a multi-megabyte history):
 * other requests' callbacks, `/healthz` included, run between the slices.
 */

/** Resolves after the callbacks already queued (I/O included) have had their turn. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Milliseconds of synchronous work a loop does between two yields. */
export const TURN_MS = 8;

/**
 * A loop's clock: call it after each step; once `ms` have passed since the last yield it returns
 * the promise of the next turn (await it), else undefined (go on without a microtask hop).
 *
 * @example
 * const pause = timeSlicer()
 * for (const text of texts) { analyse(text); const turn = pause(); if (turn) await turn }
 */
export function timeSlicer(ms = TURN_MS): () => Promise<void> | undefined {
  let since = performance.now();
  return () => {
    if (performance.now() - since <= ms) return undefined;
    return nextTurn().then(() => {
      since = performance.now();
    });
  };
}

/** Bodies larger than this many bytes are heavy: parsed and compacted with yields, and admitted in turn by the proxy. */
export const LARGE_BODY_BYTES = 256 * 1024;
