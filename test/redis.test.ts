import { spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, test } from 'vitest';
import { createClient } from 'redis';
import { cosineVerifier } from '../src/cache/verifier.js';
import { createCompactor, createResponseCache, createRuntime, redisStore, type ChatRequest } from '../src/index.js';
import type { ChatMessage } from '../src/core/types.js';
import { deepFreeze, hashEmbedder, strategyContext } from '../src/testing/index.js';
import { cacheAware } from '../strategies/cache-aware/index.js';
import { compacted, freePort, startRedis, watchedRedisStore } from './helpers.js';

// CI installs redis-server (.ci/run); locally the suite is skipped when it is missing.
const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
if (!hasRedis && process.env.CI) throw new Error('redis-server is required in CI (.ci/run installs it)');
if (!hasRedis) console.warn('test/redis.test.ts: redis-server not found, the Redis store tests are SKIPPED (apt-get install redis-server; .ci/run does)');

const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });

const completion = (content: string) => ({
  id: 'chatcmpl-r',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
});
const ask = (content: string): ChatRequest => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

const children: ChildProcess[] = [];
afterAll(async () => {
  await Promise.all(children.map(stop));
});

/** The Redis .ci/run started (REDIS_URL), else one of our own. */
async function sharedRedisUrl(): Promise<string> {
  if (process.env.REDIS_URL) return process.env.REDIS_URL;
  const port = await freePort();
  children.push(await startRedis(port));
  return `redis://127.0.0.1:${port}`;
}

describe.skipIf(!hasRedis)('redis store', () => {
  test('two compactor instances sharing one Redis share hits, embeddings and summaries', async () => {
    const url = await sharedRedisUrl();
    const prefix = `test-${process.pid}-${Date.now()}:`;
    const instance = () => {
      const store = redisStore({ url, prefix });
      const embedder = hashEmbedder(128);
      const runtime = createRuntime({ store });
      const cache = createResponseCache({ store, embedder, verifier: cosineVerifier(), threshold: 0.9, embeddings: runtime.embeddings });
      return { store, embedder, runtime, cache, compactor: createCompactor({ cache, runtime }) };
    };
    const one = instance();
    const two = instance();
    const first = await one.compactor.compact(ask('What is the tallest mountain on Earth?'), { tenant: 'acme' });
    expect(first.stats.cache?.status).toBe('miss');
    expect(await compacted(first).commit!({ format: 'openai', body: completion('Everest') })).toBe(true);
    const exact = await two.compactor.compact(ask('What is the tallest mountain on Earth?'), { tenant: 'acme' });
    expect(exact.stats.cache).toMatchObject({ status: 'hit', layer: 'exact' });
    const semantic = await two.compactor.compact(ask('What is the tallest mountain on Earth, please?'), { tenant: 'acme' });
    expect(semantic.stats.cache).toMatchObject({ status: 'hit', layer: 'semantic' });
    expect(semantic.kind === 'cached' && semantic.response.body).toEqual(completion('Everest'));
    // Another tenant on the same Redis sees nothing.
    expect((await two.compactor.compact(ask('What is the tallest mountain on Earth?'), { tenant: 'globex' })).stats.cache?.status).toBe('miss');
    // Embeddings written by one instance are read by the other: its embedder is never called for them.
    await one.runtime.embeddings.embed(one.embedder, ['a sentence worth embedding once']);
    await one.runtime.embeddings.idle();
    const before = two.embedder.texts;
    await two.runtime.embeddings.embed(two.embedder, ['a sentence worth embedding once']);
    expect(two.embedder.texts).toBe(before);
    // Summaries too.
    await one.runtime.summaryStore.set('chunk-1', '- Alice moved to Oslo in 2021');
    expect(await two.runtime.summaryStore.get('chunk-1')).toBe('- Alice moved to Oslo in 2021');
    await one.store.close();
    await two.store.close();
  });

  test("two instances sharing one Redis lay a conversation out byte for byte alike, cache-aware's early cuts included", async () => {
    const url = await sharedRedisUrl();
    const prefix = `test-layout-${process.pid}-${Date.now()}:`;
    const messages: ChatMessage[] = [{ role: 'system', content: 'be brief' }];
    for (let turn = 0; turn < 41; turn++)
      messages.push(
        { role: 'user', content: `day ${turn}: we talked about the ${['harbour', 'violin', 'garden', 'marathon'][turn % 4]} and item${turn} today` },
        { role: 'assistant', content: `lovely, tell me more about item${turn} and how it went` },
      );
    const first = [...messages, { role: 'user' as const, content: 'what happened with item3?' }];
    const next = [...first, { role: 'assistant' as const, content: 'item3 was the marathon day' }, { role: 'user' as const, content: 'ok thanks' }];
    const compact = async (runtime: ReturnType<typeof createRuntime>, history: ChatMessage[]) => {
      const request = deepFreeze({ model: 'gpt-4o', messages: history });
      return cacheAware({ embedder: hashEmbedder() }).apply(request.messages, await strategyContext(request, { budget: 300, runtime }));
    };
    const stores = [redisStore({ url, prefix }), redisStore({ url, prefix })];
    const [one, two] = stores.map((store) => createRuntime({ store }));
    const cut = await compact(one!, first);
    expect(cut.info?.nets).toMatchObject({ earlyCut: expect.any(Number) });
    // The instance that made the cut and the one that did not send the same bytes next.
    const here = await compact(one!, next);
    const there = await compact(two!, next);
    expect(JSON.stringify(there.messages)).toBe(JSON.stringify(here.messages));
    // Without the shared record, a third instance lays the window out without the cut.
    const alone = await compact(createRuntime(), next);
    expect(JSON.stringify(alone.messages)).not.toBe(JSON.stringify(here.messages));
    for (const store of stores) await store.close();
  });

  test('TTL is carried by Redis: every key the cache writes expires with its entry', async () => {
    const port = await freePort();
    children.push(await startRedis(port));
    const url = `redis://127.0.0.1:${port}`;
    const store = redisStore({ url, prefix: 'ttl:' });
    const cache = createResponseCache({ store, embedder: hashEmbedder(64), verifier: cosineVerifier(), threshold: 0.95, ttlMs: 60_000 });
    const compactor = createCompactor({ cache });
    await compacted(await compactor.compact(ask('Short-lived?'))).commit!({ format: 'openai', body: completion('Yes') });
    expect((await compactor.compact(ask('Short-lived?'))).stats.cache?.status).toBe('hit');
    // Redis keeps the clock: read each key's remaining life instead of waiting it out.
    const client = createClient({ url });
    await client.connect();
    const keys = await client.keys('ttl:*');
    expect(keys.length).toBeGreaterThanOrEqual(3);
    for (const key of keys) {
      const ttl = await client.pTTL(key);
      expect(ttl, key).toBeGreaterThan(0);
      expect(ttl, key).toBeLessThanOrEqual(60_000);
    }
    await client.close();
    await store.close();
  });

  test('Redis stopped mid-test: requests go through uncached and counted, and the cache recovers', async () => {
    const port = await freePort();
    let server = await startRedis(port);
    children.push(server);
    const { store, connected } = watchedRedisStore({ url: `redis://127.0.0.1:${port}`, timeoutMs: 200 });
    const cache = createResponseCache({ store, embedder: hashEmbedder(64), verifier: cosineVerifier(), threshold: 0.95 });
    const compactor = createCompactor({ cache, maxInputTokens: 1000 });
    const stored = await compactor.compact(ask('Before the outage'));
    await compacted(stored).commit!({ format: 'openai', body: completion('kept') });
    expect((await compactor.compact(ask('Before the outage'))).stats.cache?.status).toBe('hit');

    await stop(server);
    // (That a down store costs no deadline per operation is red-team case 11.)
    const during = await compactor.compact(ask('Before the outage'));
    expect(during.stats.cache).toMatchObject({ status: 'bypass', reason: 'store-failed' });
    expect(compacted(during).request.messages).toHaveLength(1);
    const miss = await compactor.compact(ask('During the outage'));
    expect(miss.stats.cache?.status).toBe('bypass');
    // Nothing can be stored while the store is down: a bypassed request carries no commit.
    expect(compacted(miss).commit).toBeUndefined();
    expect(cache.stats().failures.store).toBeGreaterThanOrEqual(2);

    server = await startRedis(port);
    children.push(server);
    // The client reconnects on its own, with backoff: wait for it (this is a real server restarting).
    await connected();
    const result = compacted(await compactor.compact(ask('After the outage')));
    expect(result.stats.cache?.status).toBe('miss');
    expect(await result.commit!({ format: 'openai', body: completion('back') })).toBe(true);
    // The old entry went with the old server's memory; new ones are served again.
    expect((await compactor.compact(ask('After the outage'))).stats.cache).toMatchObject({ status: 'hit' });
    await store.close();
  });
});
