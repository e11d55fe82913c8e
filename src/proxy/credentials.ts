import { LRUCache } from 'lru-cache';

/**
 * Which callers' own upstream credentials the upstream accepted recently: cached answers go only
 * to a caller whose key was accepted within `ttlMs`, so a revoked key stops getting them.
 */
export class CredentialCheck {
  readonly #accepted = new LRUCache<string, number>({ max: 100_000 });
  constructor(
    readonly ttlMs: number,
    readonly clock: () => number,
  ) {}

  isFresh(credential: string): boolean {
    const at = this.#accepted.get(credential);
    return at !== undefined && this.clock() - at < this.ttlMs;
  }

  /** Record the upstream's verdict on a request sent with this credential. */
  observe(credential: string, status: number): void {
    if (status >= 200 && status < 300) this.#accepted.set(credential, this.clock());
    else if (status === 401 || status === 403) this.#accepted.delete(credential);
  }
}
