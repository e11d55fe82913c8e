import { spawnSync, type ChildProcess } from 'node:child_process';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createResponseCache, redisStore } from '../src/index.js';
import { createProxy, type ProxyOptions, type ProxyServer } from '../src/proxy/server.js';
import { memoryStore } from '../src/stores/memory.js';
import type { Store } from '../src/stores/types.js';
import { manualClock } from '../src/testing/index.js';
import { fakeUpstream } from './fake-upstream.js';
import { freePort, locomoRequest, startRedis } from './helpers.js';

// CI installs redis-server (.ci/run); locally the Redis half is skipped when it is missing.
const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
if (!hasRedis && process.env.CI) throw new Error('redis-server is required in CI (.ci/run installs it)');
if (!hasRedis) console.warn('test/replicas.test.ts: redis-server not found, the shared-limit tests over Redis are SKIPPED (apt-get install redis-server)');

const KEY = 'pk-replica-key-1';
let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
let redis: ChildProcess | undefined;
let redisUrl = '';
const proxies: ProxyServer[] = [];
// A fixed window start, so no window boundary falls inside a test.
const clock = manualClock(1_800_000_000_000);

beforeAll(async () => {
  upstream = await fakeUpstream();
  if (hasRedis && !process.env.REDIS_URL) {
    const port = await freePort();
    redis = await startRedis(port);
    redisUrl = `redis://127.0.0.1:${port}`;
  } else redisUrl = process.env.REDIS_URL ?? '';
});
afterAll(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close(200)));
  await upstream.close();
  redis?.kill('SIGKILL');
});

async function replica(options: Partial<ProxyOptions>): Promise<string> {
  const proxy = createProxy({
    upstream: upstream.url,
    logger: pino({ level: 'silent' }),
    routes: { defaults: { maxInputTokens: 1000, onBudgetUnreachable: 'pass-through' } },
    clock: clock.now,
    ...options,
  });
  proxies.push(proxy);
  return `http://127.0.0.1:${await proxy.listen(0)}`;
}

async function send(base: string, headers: Record<string, string>, question = 'What did Caroline research?'): Promise<Response> {
  const body = { ...locomoRequest(1), model: 'gpt-4o-mini' };
  body.messages[body.messages.length - 1] = { role: 'user', content: question };
  const response = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'sk-own-credential', ...headers },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response;
}

/** Statuses of `count` requests sent in turn to each base. */
async function alternate(bases: string[], count: number, question?: (index: number) => string): Promise<number[]> {
  const statuses: number[] = [];
  for (let index = 0; index < count; index++) statuses.push((await send(bases[index % bases.length]!, { 'x-compactor-key': KEY }, question?.(index))).status);
  return statuses;
}
const ok = (statuses: number[]) => statuses.filter((status) => status === 200).length;

describe('several replicas', () => {
  test('without a shared store each proxy grants a key its full request limit', async () => {
    const keys = [{ key: KEY, requests: 3 }];
    const bases = [await replica({ keys, cache: false }), await replica({ keys, cache: false })];
    const statuses = await alternate(bases, 8);
    expect(ok(statuses)).toBe(6);
    expect(statuses.filter((status) => status === 429)).toHaveLength(2);
  });

  test('a shared store that fails: requests still go, counted per proxy, and the failure is counted', async () => {
    const broken: Store = {
      ...memoryStore(),
      kind: 'broken',
      increment: () => Promise.reject(new Error('store down')),
      get: () => Promise.reject(new Error('store down')),
    };
    const proxy = createProxy({
      upstream: upstream.url,
      logger: pino({ level: 'silent' }),
      keys: [{ key: KEY, requests: 2 }],
      sharedStore: broken,
      clock: clock.now,
    });
    proxies.push(proxy);
    const base = `http://127.0.0.1:${await proxy.listen(0)}`;
    expect(await alternate([base], 3)).toEqual([200, 200, 429]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/context_compactor_failures_total\{component="shared-store"\} [1-9]/);
  });

  test('sharedStore must be able to count', () => {
    expect(() => createProxy({ upstream: upstream.url, sharedStore: { kind: 'x' } as never })).toThrow(
      expect.objectContaining({ code: 'options.invalid', pointer: 'sharedStore' }),
    );
  });

  describe.skipIf(!hasRedis)('sharing one Redis', () => {
    const prefix = () => `replicas-${process.pid}-${Math.random().toString(36).slice(2)}:`;

    test("two proxies enforce one key's request limit jointly", async () => {
      const keys = [{ key: KEY, requests: 3 }];
      const p = prefix();
      const bases = [
        await replica({ keys, cache: false, sharedStore: redisStore({ url: redisUrl, prefix: p }) }),
        await replica({ keys, cache: false, sharedStore: redisStore({ url: redisUrl, prefix: p }) }),
      ];
      const statuses = await alternate(bases, 8);
      expect(ok(statuses)).toBe(3);
      expect(statuses.slice(3).every((status) => status === 429)).toBe(true);
    });

    test("two proxies enforce one key's token limit jointly, as one proxy alone does", async () => {
      const keys = [{ key: KEY, tokens: 2500 }];
      const alone = await replica({ keys, cache: false, sharedStore: redisStore({ url: redisUrl, prefix: prefix() }) });
      const single = ok(await alternate([alone], 8));
      expect(single).toBeGreaterThan(1);
      expect(single).toBeLessThan(8);
      const p = prefix();
      const pair = [
        await replica({ keys, cache: false, sharedStore: redisStore({ url: redisUrl, prefix: p }) }),
        await replica({ keys, cache: false, sharedStore: redisStore({ url: redisUrl, prefix: p }) }),
      ];
      expect(ok(await alternate(pair, 8))).toBe(single);
      // Each on its own, the same two would have granted it twice.
      const apart = [await replica({ keys, cache: false }), await replica({ keys, cache: false })];
      expect(ok(await alternate(apart, 16))).toBe(2 * single);
    });

    test("a caller's own key accepted by one replica gets cached answers from the other", async () => {
      const p = prefix();
      const cacheOn = () => createResponseCache({ store: redisStore({ url: redisUrl, prefix: p }), embedder: null });
      // The cache's Redis store is the shared store by default.
      const caches = [cacheOn(), cacheOn()];
      const [one, two] = [await replica({ cache: caches[0] }), await replica({ cache: caches[1] })];
      const first = await send(one, {}, 'Where did Melanie go camping?');
      expect(first.headers.get('x-compactor-cache')).toBe('miss');
      // The answer is stored; the acceptance went before it on the same connection.
      await caches[0]!.idle();
      const second = await send(two, {}, 'Where did Melanie go camping?');
      expect(second.headers.get('x-compactor-cache')).toBe('hit');
      // Apart, the second replica could not vouch for the key yet: write-only, so a miss.
      const q = prefix();
      const lone = () => createResponseCache({ store: redisStore({ url: redisUrl, prefix: q }), embedder: null });
      const apart = [lone(), lone()];
      const [three, four] = [await replica({ cache: apart[0], sharedStore: false }), await replica({ cache: apart[1], sharedStore: false })];
      await send(three, {}, 'Where did Melanie go camping?');
      await apart[0]!.idle();
      expect((await send(four, {}, 'Where did Melanie go camping?')).headers.get('x-compactor-cache')).toBe('miss');
    });
  });
});
