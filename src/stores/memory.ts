import { LRUCache } from 'lru-cache';
import { defineOptions, rules } from '../core/define-options.js';
import { invalidOption } from '../core/errors.js';
import { VectorIndex } from './ann-index.js';
import type { Store, VectorMatch } from './types.js';

export interface MemoryStoreOptions {
  /**
   * Bound on everything the store holds (values, keys and indexed vectors), in bytes.
   * @default 268435456 (256 MiB)
   */
  maxBytes?: number;
  /**
   * Rows of one namespace at which its vector index moves from exact flat search to HNSW
   * (usearch). Flat search over 512-dimension vectors on the WebAssembly SIMD kernel costs about
   * 0.14 ms per 1,000 rows here (bench/cache-lookup.ts: 0.57 ms p50 at 4,096 rows), so below this
   * size it is exact and fast enough.
   * @default 4096
   */
  annThreshold?: number;
  /**
   * Milliseconds clock the TTLs are measured on; injected in tests.
   * @default performance.now
   */
  clock?: () => number;
}

export const MEMORY_STORE_DEFAULTS = { maxBytes: 256 * 1024 * 1024, annThreshold: 4096 };

export const MEMORY_STORE_OPTIONS = defineOptions<MemoryStoreOptions, typeof MEMORY_STORE_DEFAULTS>({
  factory: 'memoryStore',
  defaults: MEMORY_STORE_DEFAULTS,
  rules: { maxBytes: rules.int(4096), annThreshold: rules.int(16), clock: rules.function },
  docs: [['src/stores/memory.ts', 'MemoryStoreOptions']],
});

/** What the LRU's own bookkeeping costs per slot, beyond its key and value (measured: bench/tenant-memory.ts). */
const SLOT_OVERHEAD_BYTES = 160;
/**
 * What one indexed vector costs beyond its floats: its row in the index's maps, and its share of
 * the namespace's index objects, all of them when it is the only vector of its tenant.
 */
const VECTOR_OVERHEAD_BYTES = 1536;

type Slot = { value: string } | { namespace: string; id: string; bytes: number };

/**
 * In-process store: one lru-cache bounded by bytes, with per-entry TTL, plus a vector index per
 * namespace. An indexed vector is itself an LRU slot, so evicting or expiring it removes it from
 * its index and the bound covers vectors too.
 *
 * @example
 * const store = memoryStore({ maxBytes: 64 * 1024 * 1024 })
 */
export function memoryStore(options: MemoryStoreOptions = {}): Store & { readonly vectorCount: number; indexKind(namespace: string): string | undefined } {
  const settings = MEMORY_STORE_OPTIONS.parse(options);
  const indexes = new Map<string, VectorIndex>();
  let vectorCount = 0;
  const slots = new LRUCache<string, Slot>({
    maxSize: settings.maxBytes,
    sizeCalculation: (slot, key) => ('value' in slot ? slot.value.length * 2 : slot.bytes) + key.length * 2 + SLOT_OVERHEAD_BYTES,
    dispose: (slot, _key, reason) => {
      if ('value' in slot || reason === 'set') return;
      const index = indexes.get(slot.namespace);
      if (!index) return;
      index.remove(slot.id);
      vectorCount--;
      if (index.size === 0) indexes.delete(slot.namespace);
    },
    ttlAutopurge: false,
    // lru-cache reads a start time of 0 as "never set": shifting the clock keeps a clock that starts at 0 working.
    ...(settings.clock
      ? {
          perf: {
            now: (
              (clock) => () =>
                clock() + 1
            )(settings.clock),
          },
          ttlResolution: 0,
        }
      : {}),
  });
  const vectorKey = (namespace: string, id: string): string => `\u0000v\u0000${namespace}\u0000${id}`;
  const ttl = (ttlMs: number | undefined) => (ttlMs && ttlMs > 0 ? { ttl: ttlMs } : {});

  return {
    kind: 'memory',
    get vectorCount() {
      return vectorCount;
    },
    indexKind: (namespace) => indexes.get(namespace)?.kind,
    async get(key) {
      const slot = slots.get(key);
      return slot && 'value' in slot ? slot.value : undefined;
    },
    async getMany(keys) {
      return keys.map((key) => {
        const slot = slots.get(key);
        return slot && 'value' in slot ? slot.value : undefined;
      });
    },
    async set(key, value, ttlMs) {
      slots.set(key, { value }, ttl(ttlMs));
    },
    async setMany(entries, ttlMs) {
      for (const [key, value] of entries) slots.set(key, { value }, ttl(ttlMs));
    },
    async delete(key) {
      slots.delete(key);
    },
    async increment(key, by, ttlMs) {
      const slot = slots.get(key);
      const before = slot && 'value' in slot ? Number(slot.value) || 0 : 0;
      const remaining = slot ? slots.getRemainingTTL(key) : ttlMs;
      slots.set(key, { value: String(before + by) }, ttl(remaining > 0 && Number.isFinite(remaining) ? remaining : ttlMs));
      return before + by;
    },
    async addVector(namespace, id, vector, ttlMs) {
      let index = indexes.get(namespace);
      if (!index) {
        index = new VectorIndex(vector.length, { annThreshold: settings.annThreshold });
        indexes.set(namespace, index);
      }
      if (index.dimensions !== vector.length) invalidOption('vector', `${index.dimensions} dimensions in namespace`, vector.length);
      const key = vectorKey(namespace, id);
      if (!slots.has(key)) vectorCount++;
      index.add(id, vector);
      // Twice the floats: an index's capacity is at most twice its rows.
      slots.set(key, { namespace, id, bytes: vector.byteLength * 2 + VECTOR_OVERHEAD_BYTES }, ttl(ttlMs));
    },
    async searchVectors(namespace, vector, k, minScore) {
      const index = indexes.get(namespace);
      if (!index || index.dimensions !== vector.length) return [];
      const found: VectorMatch[] = [];
      // Ask for a few more than k: expired rows are skipped (and purged) here.
      for (const match of index.search(vector, k + 4, minScore)) {
        if (slots.get(vectorKey(namespace, match.id)) === undefined) continue;
        found.push(match);
        if (found.length === k) break;
      }
      return found;
    },
    async close() {
      slots.clear();
      indexes.clear();
      vectorCount = 0;
    },
  };
}
