import type { EmbeddingStore } from '../embedders/memo.js';
import type { SummaryStore } from '../summarizers/queue.js';
import { decodeVector, encodeVector, type Store } from './types.js';

/**
 * The embedding memo's second tier on a Store: with `redisStore()`, instances share embeddings.
 *
 * @example
 * createEmbeddingCache({ store: embeddingStore(redisStore({ url })) })
 */
export function embeddingStore(store: Store, ttlMs = 7 * 24 * 3600 * 1000): EmbeddingStore {
  return {
    async getMany(keys) {
      const values = await store.getMany(keys.map((key) => `emb:${key}`));
      return values.map((value) => (value === undefined ? undefined : decodeVector(value)));
    },
    setMany: (entries) =>
      store.setMany(
        entries.map(([key, vector]) => [`emb:${key}`, encodeVector(vector)] as const),
        ttlMs,
      ),
  };
}

/**
 * Summaries on a Store: with `redisStore()`, instances share summaries (and a chunk summarized by
 * one instance is not summarized again by another).
 *
 * @example
 * summarize({ store: summaryStore(redisStore({ url })) })
 */
export function summaryStore(store: Store, ttlMs = 30 * 24 * 3600 * 1000): SummaryStore {
  return {
    get: (key) => store.get(`sum:${key}`),
    set: (key, value) => store.set(`sum:${key}`, value, ttlMs),
  };
}

/**
 * Layout state on a Store (cache-aware's early cuts, a few hundred bytes per conversation): with
 * `redisStore()`, instances lay a conversation's prompt out the same way.
 */
export function layoutStore(store: Store, ttlMs = 7 * 24 * 3600 * 1000): SummaryStore {
  return {
    get: (key) => store.get(`lay:${key}`),
    set: (key, value) => store.set(`lay:${key}`, value, ttlMs),
  };
}
