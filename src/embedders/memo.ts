import { defineOptions, rules } from '../core/define-options.js';
import { nextTurn } from '../core/turns.js';
import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { throwIfAborted } from '../core/errors.js';
import { normalize, type Embedder, type EmbeddingCache } from './types.js';

/**
 * A second tier behind the in-process memo, shared by many instances (the Redis store of the
 * semantic-cache issue implements it). Failures of the store are the caller's to count.
 */
export interface EmbeddingStore {
  getMany(keys: readonly string[]): Promise<(Float32Array | undefined)[]>;
  setMany(entries: readonly [string, Float32Array][]): Promise<void>;
}

export interface EmbeddingCacheOptions {
  /**
   * Bound on the memo, in bytes of vectors.
   * @default 67108864 (64 MiB: about 32k 512-dimension vectors)
   */
  maxBytes?: number;
  /**
   * Largest batch sent to the embedder in one call. In-process encoders run on the event loop, so
   * small batches keep a cold history's embedding from blocking other requests for long.
   * @default 16
   */
  maxBatch?: number;
  /** Optional shared store behind the memo. */
  store?: EmbeddingStore;
}

export const EMBEDDING_CACHE_DEFAULTS = { maxBytes: 64 * 1024 * 1024, maxBatch: 16 };

export type { EmbeddingCache } from './types.js';

export const EMBEDDING_CACHE_OPTIONS = defineOptions<EmbeddingCacheOptions, typeof EMBEDDING_CACHE_DEFAULTS>({
  factory: 'createEmbeddingCache',
  defaults: EMBEDDING_CACHE_DEFAULTS,
  rules: { maxBytes: rules.int(1024), maxBatch: rules.int(1), store: rules.custom('an EmbeddingStore') },
  docs: [['src/embedders/memo.ts', 'EmbeddingCacheOptions']],
});

/** Texts hashed between two yields to the event loop when warming. */
const WARM_SLICE = 512;

/**
 * Memo of embeddings keyed by (embedder id, SHA-1 of the text), bounded by bytes. Concurrent
 * requests for the same text share one in-flight promise, so a new turn costs only its new text.
 *
 * @example
 * const cache = createEmbeddingCache({ maxBytes: 32 * 1024 * 1024 })
 * const [query] = await cache.embed(embedder, ['what did we decide?'])
 */
export function createEmbeddingCache(options: EmbeddingCacheOptions = {}): EmbeddingCache {
  const { maxBytes, maxBatch } = EMBEDDING_CACHE_OPTIONS.parse(options);
  const memo = new LRUCache<string, Float32Array>({ maxSize: maxBytes, sizeCalculation: (value, key) => value.byteLength + key.length * 2 + 64 });
  const inFlight = new Map<string, Promise<Float32Array>>();
  const writes = new Set<Promise<unknown>>();
  let misses = 0;
  let backgroundFailures = 0;
  // Bumped by close(): warm slices of an earlier generation stop.
  let generation = 0;

  async function fetchBatch(embedder: Embedder, keys: string[], texts: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    let found: (Float32Array | undefined)[] = new Array(keys.length).fill(undefined);
    if (options.store) {
      try {
        found = await options.store.getMany(keys);
      } catch {
        // A store outage only costs recomputation.
      }
    }
    const missing = found.flatMap((vector, index) => (vector ? [] : [index]));
    for (let start = 0; start < missing.length; start += maxBatch) {
      throwIfAborted(signal);
      const slice = missing.slice(start, start + maxBatch);
      misses += slice.length;
      const vectors = await embedder.embed(
        slice.map((index) => texts[index]!),
        { signal },
      );
      slice.forEach((index, position) => {
        found[index] = normalize(Float32Array.from(vectors[position]!));
      });
      if (options.store) {
        // A store outage only costs recomputation; the write is tracked so idle() can wait for it.
        const write = options.store.setMany(slice.map((index) => [keys[index]!, found[index]!])).catch(() => undefined);
        writes.add(write);
        void write.finally(() => writes.delete(write));
      }
      // In-process encoders compute on the event loop and resolve through microtasks: without a
      // turn of the loop between batches, a cold history would hold every other request until
      // its last batch (seconds: bench/notes/HISTORY.md).
      if (start + maxBatch < missing.length) await nextTurn();
    }
    return found as Float32Array[];
  }

  const keyOf = (embedder: Embedder, text: string): string => `${embedder.id}|${hash('sha1', text, 'base64')}`;

  const cache: EmbeddingCache = {
    get misses() {
      return misses;
    },
    get backgroundFailures() {
      return backgroundFailures;
    },
    peek(embedder, texts) {
      return texts.map((text) => memo.get(keyOf(embedder, text)));
    },
    async idle() {
      while (inFlight.size > 0 || writes.size > 0) await Promise.allSettled([...inFlight.values(), ...writes]);
    },
    close() {
      generation++;
    },
    warm(embedder, texts) {
      // A long history is hashed in slices that yield to the event loop: this runs off the request's path.
      const started = generation;
      const slice = (start: number): void => {
        if (generation !== started) return;
        const missing = texts.slice(start, start + WARM_SLICE).filter((text) => !memo.has(keyOf(embedder, text)));
        if (missing.length > 0) cache.embed(embedder, missing).catch(() => void backgroundFailures++);
        if (start + WARM_SLICE < texts.length) void nextTurn().then(() => slice(start + WARM_SLICE));
      };
      slice(0);
    },
    async embed(embedder, texts, embedOptions = {}) {
      const results: Promise<Float32Array>[] = new Array(texts.length);
      const batchKeys: string[] = [];
      const batchTexts: string[] = [];
      const resolvers: { resolve: (vector: Float32Array) => void; reject: (error: unknown) => void }[] = [];
      for (let index = 0; index < texts.length; index++) {
        const key = keyOf(embedder, texts[index]!);
        const cached = memo.get(key);
        if (cached) {
          results[index] = Promise.resolve(cached);
          continue;
        }
        let pending = inFlight.get(key);
        if (!pending) {
          pending = new Promise<Float32Array>((resolve, reject) => resolvers.push({ resolve, reject }));
          // Callers that give up (deadline) must not leave an unhandled rejection behind.
          pending.catch(() => undefined);
          inFlight.set(key, pending);
          batchKeys.push(key);
          batchTexts.push(texts[index]!);
        }
        results[index] = pending;
      }
      if (batchKeys.length > 0) {
        fetchBatch(embedder, batchKeys, batchTexts, embedOptions.signal).then(
          (vectors) => {
            vectors.forEach((vector, index) => {
              memo.set(batchKeys[index]!, vector);
              inFlight.delete(batchKeys[index]!);
              resolvers[index]!.resolve(vector);
            });
          },
          (error: unknown) => {
            batchKeys.forEach((key, index) => {
              inFlight.delete(key);
              resolvers[index]!.reject(error);
            });
          },
        );
      }
      return Promise.all(results);
    },
  };
  return cache;
}
