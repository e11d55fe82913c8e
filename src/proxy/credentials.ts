import { LRUCache } from 'lru-cache';
import type { Store } from '../stores/types.js';

/**
 * Which callers' own upstream credentials the upstream accepted recently: cached answers go only
 * to a caller whose key was accepted within `ttlMs`, so a revoked key stops getting them. With a
 * shared store, an acceptance seen by one replica counts for all of them (the credential's
 * fingerprint is stored, never the credential), and a 401 or 403 seen by any one revokes it.
 */
export class CredentialCheck {
  readonly #accepted = new LRUCache<string, number>({ max: 100_000 });
  /** When this replica last wrote an acceptance to the store, so it writes at most a few per TTL. */
  readonly #shared = new LRUCache<string, number>({ max: 100_000 });
  constructor(
    readonly ttlMs: number,
    readonly clock: () => number,
    readonly store?: Store,
    readonly onFailure?: (error: unknown) => void,
  ) {}

  #key(credential: string): string {
    return `accepted:${credential}`;
  }

  /** Accepted within the TTL, here or (with a shared store) by another replica. A store that fails answers no. */
  async isFresh(credential: string): Promise<boolean> {
    const at = this.#accepted.get(credential);
    if (at !== undefined && this.clock() - at < this.ttlMs) return true;
    if (!this.store) return false;
    try {
      return (await this.store.get(this.#key(credential))) !== undefined;
    } catch (error) {
      this.onFailure?.(error);
      return false;
    }
  }

  /** Record the upstream's verdict on a request sent with this credential. */
  observe(credential: string, status: number): void {
    const now = this.clock();
    if (status >= 200 && status < 300) {
      this.#accepted.set(credential, now);
      const written = this.#shared.get(credential);
      if (this.store && (written === undefined || now - written >= this.ttlMs / 4)) {
        this.#shared.set(credential, now);
        this.store.set(this.#key(credential), String(now), this.ttlMs).catch((error: unknown) => this.onFailure?.(error));
      }
    } else if (status === 401 || status === 403) {
      this.#accepted.delete(credential);
      this.#shared.delete(credential);
      this.store?.delete(this.#key(credential)).catch((error: unknown) => this.onFailure?.(error));
    }
  }
}
