/** A match from a store's vector index. `score` is the cosine similarity (vectors are unit length). */
export interface VectorMatch {
  id: string;
  score: number;
}

/**
 * Where caches keep what they share: response-cache entries and their vectors, embeddings and
 * summaries. One interface, so a deployment swaps `memoryStore()` for `redisStore()` in one place
 * and every instance pointed at the same Redis shares hits, embeddings and summaries.
 *
 * Values are strings. Every method may reject when the store is down; callers bypass the store,
 * count the failure and carry on (a store is never on the critical path of a request).
 */
export interface Store {
  /** Names the backend in stats and metrics (`memory`, `redis`). */
  readonly kind: string;
  get(key: string): Promise<string | undefined>;
  getMany(keys: readonly string[]): Promise<(string | undefined)[]>;
  /** `ttlMs` undefined means no expiry (the store's byte bound still applies). */
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  setMany(entries: readonly (readonly [string, string])[], ttlMs?: number): Promise<void>;
  delete(key: string): Promise<void>;
  /**
   * Add `by` to an integer counter, atomically across every instance sharing the store, and give
   * its new value. A counter that does not exist starts at 0 and expires `ttlMs` after it was
   * created (adding does not extend it). The proxy keeps rate-limit windows in it, so replicas
   * sharing a Redis enforce one key's limits jointly.
   */
  increment?(key: string, by: number, ttlMs: number): Promise<number>;
  /**
   * Index a unit vector under `id` in `namespace`. The vector lives as long as `ttlMs` (and at most
   * as long as the store keeps it), so a search may return ids whose value already expired:
   * callers fetch the value and skip what is gone.
   */
  addVector(namespace: string, id: string, vector: Float32Array, ttlMs?: number): Promise<void>;
  /** Up to `k` nearest ids in `namespace` with cosine >= `minScore`, best first. Never crosses namespaces. */
  searchVectors(namespace: string, vector: Float32Array, k: number, minScore: number): Promise<VectorMatch[]>;
  /** Release connections (Redis) or memory. */
  close(): Promise<void>;
}

export function isStore(value: unknown): value is Store {
  const store = value as Partial<Store> | null;
  return (
    typeof store === 'object' &&
    store !== null &&
    typeof store.get === 'function' &&
    typeof store.set === 'function' &&
    typeof store.searchVectors === 'function'
  );
}

/** Base64 of a vector's bytes: compact, and safe in any string store. */
export function encodeVector(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

export function decodeVector(text: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer, 0, copy.byteLength >> 2);
}
