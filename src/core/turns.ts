/**
 * Cooperative yielding for long synchronous work on the request path (a multi-megabyte history):
 * other requests' callbacks, `/healthz` included, run between the slices.
 */

/**
 * Sliced loops waiting for their next turn, served one per turn of the event loop. With a
 * `setImmediate` each, every loop waiting would resume in the same check phase, back to back:
 * three concurrent 8 ms slices would hold the loop for 24 ms, and `/healthz` with it. Served one
 * at a time, I/O (the poll phase) has its turn between any two slices, whoever runs them.
 */
const waiting: (() => void)[] = [];
let scheduled = false;

function serveOne(): void {
  const next = waiting.shift();
  if (waiting.length > 0) setImmediate(serveOne);
  else scheduled = false;
  next?.();
}

/** Resolves after the callbacks already queued (I/O included) have had their turn, and after every slice waiting before it. */
export const nextTurn = (): Promise<void> =>
  new Promise((resolve) => {
    waiting.push(resolve);
    if (!scheduled) {
      scheduled = true;
      setImmediate(serveOne);
    }
  });

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
