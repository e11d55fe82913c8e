import type { createClient } from 'redis';
import { CompactorError } from '../core/errors.js';
import { defineOptions, rules } from '../core/define-options.js';
import { importOptional, requireInstalled } from '../core/optional.js';
import { withDeadline } from '../core/deadline.js';
import { dot } from '../embedders/types.js';
import { HyperplaneLsh } from './lsh.js';
import { decodeVector, encodeVector, type Store, type VectorMatch } from './types.js';

export interface RedisStoreOptions {
  /**
   * Redis URL.
   * @default 'redis://127.0.0.1:6379'
   */
  url?: string;
  /**
   * Prefix of every key this store writes, so several deployments can share one Redis.
   * @default 'cc:'
   */
  prefix?: string;
  /**
   * Deadline of one store operation, in milliseconds. A slower or unreachable Redis fails the
   * operation (the caller bypasses the cache and counts it) instead of holding the request.
   * @default 250
   */
  timeoutMs?: number;
  /**
   * LSH tables. More tables find more near neighbours and cost one more set read per lookup.
   * @default 12
   */
  lshTables?: number;
  /**
   * Bits per LSH table: buckets per table are 2^bits.
   * @default 10
   */
  lshBits?: number;
  /**
   * Candidates, ranked by how many tables they share with the query, whose vectors are fetched and
   * scored exactly.
   * @default 32
   */
  candidates?: number;
  /**
   * Seed of the LSH hyperplanes. Every instance sharing a Redis must use the same seed.
   * @default 1
   */
  seed?: number;
  /**
   * Called once when Redis becomes unreachable (at start or later) and once when it is back, with
   * the error that took it down. Meanwhile every operation fails at once (the cache is bypassed
   * and the failure counted) instead of waiting `timeoutMs`, and the client reconnects in the
   * background. The proxy's `serve` logs these.
   */
  onConnectionChange?: (connected: boolean, error?: Error) => void;
}

export const REDIS_STORE_DEFAULTS = {
  url: 'redis://127.0.0.1:6379',
  prefix: 'cc:',
  timeoutMs: 250,
  lshTables: 12,
  lshBits: 10,
  candidates: 32,
  seed: 1,
} satisfies Required<Omit<RedisStoreOptions, 'onConnectionChange'>>;

/**
 * Redis store, with the official `redis` client. Values carry TTLs; vectors are indexed with
 * random-hyperplane LSH buckets kept in Redis sets (plain Redis 7, no vector module), and the
 * candidates are verified by exact cosine in the client. Instances sharing one Redis share
 * everything. While Redis is down every operation rejects quickly (`upstream.failed`), and the
 * client reconnects in the background.
 *
 * @example
 * const store = redisStore({ url: process.env.REDIS_URL })
 */
export const REDIS_STORE_OPTIONS = defineOptions<RedisStoreOptions, typeof REDIS_STORE_DEFAULTS>({
  factory: 'redisStore',
  defaults: REDIS_STORE_DEFAULTS,
  rules: {
    url: { expected: 'a redis:// or rediss:// URL', test: (value) => typeof value === 'string' && /^rediss?:\/\//.test(value), invalid: 'http://x' },
    prefix: { expected: 'a string', test: (value) => typeof value === 'string', invalid: 42 },
    timeoutMs: rules.int(1, 60_000),
    lshTables: rules.int(1, 64),
    lshBits: rules.int(1, 24),
    candidates: rules.int(1, 10_000),
    seed: rules.int(Number.MIN_SAFE_INTEGER),
    onConnectionChange: rules.function,
  },
  docs: [['src/stores/redis.ts', 'RedisStoreOptions']],
});

export function redisStore(options: RedisStoreOptions = {}): Store & { readonly connected: boolean } {
  const settings = REDIS_STORE_OPTIONS.parse(options);
  // redis is an optional peer: say so here, at construction, not on the first request.
  requireInstalled('redis', 'redisStore()');

  type Client = ReturnType<typeof createClient>;
  // Loaded now, not by the first request (whose deadline would pay for it).
  const loading = importOptional<typeof import('redis')>('redis', 'redisStore()');
  loading.catch(() => undefined);
  let client: Client | undefined;
  let lastError: unknown;
  let connecting: Promise<unknown> | undefined;
  // Known to be unreachable: operations fail at once until the client's background reconnection succeeds.
  let down = false;
  const markDown = (error: unknown) => {
    if (down) return;
    down = true;
    options.onConnectionChange?.(false, error instanceof Error ? error : new Error(String(error)));
  };
  const lsh = new Map<number, HyperplaneLsh>();
  const p = settings.prefix;

  async function ready(): Promise<Client> {
    if (!client) {
      const redis = await loading;
      client ??= redis.createClient({
        url: settings.url,
        // Fail fast while disconnected instead of queueing commands behind a dead socket.
        disableOfflineQueue: true,
        socket: { connectTimeout: Math.max(settings.timeoutMs, 1000), reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
      });
      // Without a listener, node-redis rethrows connection errors as uncaught: the process would die.
      client.on('error', (error: unknown) => {
        lastError = error;
        if (!client?.isReady) markDown(error);
      });
      client.on('ready', () => {
        if (!down) return;
        down = false;
        options.onConnectionChange?.(true);
      });
    }
    if (client.isReady) return client;
    const connected = client;
    connecting ??= connected.connect().catch((error: unknown) => {
      connecting = undefined;
      throw error;
    });
    await connecting;
    return connected;
  }

  // Connect now, in the background: the first request should not pay for the handshake.
  ready().catch(() => undefined);

  async function run<T>(what: string, operation: (redis: Client) => Promise<T>): Promise<T> {
    if (down && !client?.isReady) {
      throw new CompactorError(
        'upstream.failed',
        `redis ${what} skipped: Redis is unreachable (${(lastError as Error)?.message ?? 'no connection'}); reconnecting in the background`,
      );
    }
    try {
      return await withDeadline(
        ready().then((redis) => operation(redis)),
        settings.timeoutMs,
        `redis ${what}`,
      );
    } catch (error) {
      if (CompactorError.isInstance(error)) throw error;
      throw new CompactorError('upstream.failed', `redis ${what} failed: ${(error as Error)?.message ?? String(lastError)}`, { cause: error });
    }
  }

  function hasher(dimensions: number): HyperplaneLsh {
    let found = lsh.get(dimensions);
    if (!found) {
      found = new HyperplaneLsh(dimensions, settings.lshTables, settings.lshBits, settings.seed);
      lsh.set(dimensions, found);
    }
    return found;
  }
  const bucketKey = (namespace: string, table: number, code: number) => `${p}lsh:${namespace}:${table}:${code}`;
  const vectorKey = (namespace: string, id: string) => `${p}vec:${namespace}:${id}`;

  return {
    kind: 'redis',
    get connected() {
      return client?.isReady ?? false;
    },
    get: (key) => run('get', async (redis) => (await redis.get(p + key)) ?? undefined),
    getMany: (keys) =>
      keys.length === 0 ? Promise.resolve([]) : run('mget', async (redis) => (await redis.mGet(keys.map((key) => p + key))).map((value) => value ?? undefined)),
    set: (key, value, ttlMs) =>
      run('set', async (redis) => {
        await (ttlMs && ttlMs > 0 ? redis.set(p + key, value, { PX: ttlMs }) : redis.set(p + key, value));
      }),
    setMany: (entries, ttlMs) =>
      entries.length === 0
        ? Promise.resolve()
        : run('set', async (redis) => {
            const multi = redis.multi();
            for (const [key, value] of entries) {
              if (ttlMs && ttlMs > 0) multi.set(p + key, value, { PX: ttlMs });
              else multi.set(p + key, value);
            }
            await multi.exec();
          }),
    delete: (key) =>
      run('del', async (redis) => {
        await redis.del(p + key);
      }),
    increment: (key, by, ttlMs) =>
      run('incrby', async (redis) => {
        // One transaction: the count and its expiry, set only when the counter is new (NX).
        const [value] = (await redis
          .multi()
          .incrBy(p + key, by)
          .pExpire(p + key, ttlMs, 'NX')
          .exec()) as unknown as [number, number];
        return Number(value);
      }),
    addVector: (namespace, id, vector, ttlMs) =>
      run('index', async (redis) => {
        const codes = hasher(vector.length).codes(vector);
        const multi = redis.multi();
        const key = vectorKey(namespace, id);
        if (ttlMs && ttlMs > 0) multi.set(key, encodeVector(vector), { PX: ttlMs });
        else multi.set(key, encodeVector(vector));
        codes.forEach((code, table) => {
          const bucket = bucketKey(namespace, table, code);
          multi.sAdd(bucket, id);
          // A bucket outlives its newest member's TTL, and no longer: stale ids go with it.
          if (ttlMs && ttlMs > 0) {
            // NX sets the first expiry (GT alone treats "no expiry" as infinite), GT extends it.
            multi.pExpire(bucket, ttlMs, 'NX');
            multi.pExpire(bucket, ttlMs, 'GT');
          } else multi.persist(bucket);
        });
        await multi.exec();
      }),
    searchVectors: (namespace, vector, k, minScore) =>
      run('search', async (redis) => {
        const codes = hasher(vector.length).codes(vector);
        const multi = redis.multi();
        codes.forEach((code, table) => {
          multi.sMembers(bucketKey(namespace, table, code));
        });
        const buckets = (await multi.exec()) as unknown as string[][];
        const collisions = new Map<string, number>();
        for (const members of buckets) for (const id of members ?? []) collisions.set(id, (collisions.get(id) ?? 0) + 1);
        if (collisions.size === 0) return [];
        const candidates = [...collisions.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, settings.candidates)
          .map(([id]) => id);
        const stored = await redis.mGet(candidates.map((id) => vectorKey(namespace, id)));
        const matches: VectorMatch[] = [];
        stored.forEach((encoded, index) => {
          if (!encoded) return;
          const candidate = decodeVector(encoded);
          if (candidate.length !== vector.length) return;
          const score = dot(candidate, vector);
          if (score >= minScore) matches.push({ id: candidates[index]!, score });
        });
        return matches.sort((a, b) => b.score - a.score).slice(0, k);
      }),
    async close() {
      if (client?.isOpen) await client.close().catch(() => undefined);
    },
  };
}
