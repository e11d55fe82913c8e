import { LRUCache } from 'lru-cache';
import { CompactorError } from '../core/errors.js';
import type { Store } from '../stores/types.js';

/** One key's limits. */
export interface KeyLimits {
  requests: number;
  tokens: number;
  windowMs: number;
}

interface Usage {
  windowStart: number;
  requests: number;
  tokens: number;
}

/** Charge the prompt tokens a request will send upstream: throws `rate.limited` when the window's tokens are already spent. */
export type Reserve = (tokens: number) => Promise<void>;

export interface WindowsOptions {
  clock: () => number;
  /**
   * Where replicas share their windows (a `redisStore()`): each key's requests and tokens are then
   * counted once for every proxy sharing it. Without one, each proxy counts on its own.
   */
  store?: Store | undefined;
  /** Called when the shared store failed and this proxy counted on its own instead. */
  onFailure?: (error: unknown) => void;
}

function overLimit(retryAfterMs: number, what: 'requests' | 'tokens'): CompactorError {
  return new CompactorError('rate.limited', `over this key's ${what} for the window; retry in ${Math.ceil(retryAfterMs / 1000)} s`, {
    details: { retryAfterMs: Math.max(0, retryAfterMs) },
  });
}

/**
 * Rate-limit windows per key. In memory a window starts with a key's first request. Shared, the
 * windows are fixed (aligned to multiples of `windowMs` since the epoch, so every replica agrees on
 * them without talking) and counted with the store's atomic `increment`: of requests racing on one
 * key across replicas, at most one goes past a limit, as within one proxy. When the store fails,
 * the proxy counts on its own for that request, and the failure is reported.
 */
export function createWindows({ clock, store, onFailure }: WindowsOptions) {
  const usage = new LRUCache<string, Usage>({ max: 100_000 });
  const increment = store?.increment?.bind(store);

  function admitLocally(id: string, limits: KeyLimits): Reserve {
    const now = clock();
    let charged = usage.get(id);
    if (!charged || now - charged.windowStart >= limits.windowMs) {
      charged = { windowStart: now, requests: 0, tokens: 0 };
      usage.set(id, charged);
    }
    if (charged.requests >= limits.requests || charged.tokens >= limits.tokens)
      throw overLimit(charged.windowStart + limits.windowMs - now, charged.requests >= limits.requests ? 'requests' : 'tokens');
    charged.requests++;
    const window = charged;
    return async (tokens) => {
      const at = clock();
      // A window that ended while the request was read and compacted starts afresh.
      if (at - window.windowStart >= limits.windowMs) {
        window.windowStart = at;
        window.requests = 1;
        window.tokens = 0;
      }
      if (window.tokens >= limits.tokens) throw overLimit(window.windowStart + limits.windowMs - at, 'tokens');
      window.tokens += tokens;
    };
  }

  async function admitShared(id: string, limits: KeyLimits, add: NonNullable<Store['increment']>): Promise<Reserve> {
    const now = clock();
    const index = Math.floor(now / limits.windowMs);
    const ends = (index + 1) * limits.windowMs;
    const key = (what: string) => `limit:${id}:${limits.windowMs}:${index}:${what}`;
    const ttl = limits.windowMs + 1000;
    const [requests, spent] = await Promise.all([add(key('r'), 1, ttl), add(key('t'), 0, ttl)]);
    if (requests > limits.requests) throw overLimit(ends - now, 'requests');
    if (spent >= limits.tokens) throw overLimit(ends - now, 'tokens');
    return async (tokens) => {
      let after: number;
      try {
        after = await add(key('t'), tokens, ttl);
      } catch (error) {
        onFailure?.(error);
        return;
      }
      if (after - tokens >= limits.tokens) throw overLimit(ends - clock(), 'tokens');
    };
  }

  return {
    /** Count one request of a key: throws `rate.limited` when its window's requests or tokens are spent. */
    async admit(id: string, limits: KeyLimits): Promise<Reserve> {
      const unlimited = !Number.isFinite(limits.requests) && !Number.isFinite(limits.tokens);
      if (unlimited) return async () => undefined;
      if (!increment) return admitLocally(id, limits);
      try {
        return await admitShared(id, limits, increment);
      } catch (error) {
        if (CompactorError.isInstance(error) && error.code === 'rate.limited') throw error;
        onFailure?.(error);
        return admitLocally(id, limits);
      }
    },
  };
}
