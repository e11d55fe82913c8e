import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, describe, expect, test } from 'vitest';
import { cosineVerifier, createCompactor, createEmbeddingCache, createResponseCache, embeddingStore, redisStore, summaryStore, type ChatRequest } from '../src/index.js';
import { hashEmbedder } from '../src/testing/index.js';

// CI installs redis-server (.ci/run); locally the suite is skipped when it is missing.
const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
if (!hasRedis && process.env.CI) throw new Error('redis-server is required in CI (.ci/run installs it)');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** A throwaway redis-server this test can stop and restart (no persistence). */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], { stdio: 'ignore' });
  for (let attempt = 0; attempt < 100; attempt++) {
    const probe = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (probe.stdout?.trim() === 'PONG') return child;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('redis-server did not start');
}

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

describe.skipIf(!hasRedis)('redis store', () => {
  test('two compactor instances sharing one Redis share hits, embeddings and summaries', async () => {
    // The Redis .ci/run started, else one of our own.
    let url = process.env.REDIS_URL;
    if (!url) {
      const port = await freePort();
      children.push(await startRedis(port));
      url = `redis://127.0.0.1:${port}`;
    }
    const prefix = `test-${process.pid}-${Date.now()}:`;
    const instance = () => {
      const store = redisStore({ url, prefix });
      const embedder = hashEmbedder(128);
      const cache = createResponseCache({ store, embedder, verifier: cosineVerifier(), threshold: 0.95, embeddings: createEmbeddingCache({ store: embeddingStore(store) }) });
      return { store, embedder, cache, compactor: createCompactor({ cache }) };
    };
    const one = instance();
    const two = instance();
    const first = await one.compactor.compact(ask('What is the tallest mountain on Earth?'), { tenant: 'acme' });
    expect(first.cache?.status).toBe('miss');
    expect(await first.cache!.commit({ format: 'openai', body: completion('Everest') })).toBe(true);
    const exact = await two.compactor.compact(ask('What is the tallest mountain on Earth?'), { tenant: 'acme' });
    expect(exact.stats.cache).toMatchObject({ status: 'hit', layer: 'exact' });
    const semantic = await two.compactor.compact(ask('what is the tallest mountain on earth'), { tenant: 'acme' });
    expect(semantic.stats.cache).toMatchObject({ status: 'hit', layer: 'semantic' });
    expect(semantic.cache?.response?.body).toEqual(completion('Everest'));
    // Another tenant on the same Redis sees nothing.
    expect((await two.compactor.compact(ask('What is the tallest mountain on Earth?'), { tenant: 'globex' })).cache?.status).toBe('miss');
    // Embeddings written by one instance are read by the other: its embedder is never called for them.
    const sharedA = createEmbeddingCache({ store: embeddingStore(one.store) });
    const sharedB = createEmbeddingCache({ store: embeddingStore(two.store) });
    await sharedA.embed(one.embedder, ['a sentence worth embedding once']);
    await sharedA.idle();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = two.embedder.texts;
    await sharedB.embed(two.embedder, ['a sentence worth embedding once']);
    expect(two.embedder.texts).toBe(before);
    // Summaries too.
    await summaryStore(one.store).set('chunk-1', '- Alice moved to Oslo in 2021');
    expect(await summaryStore(two.store).get('chunk-1')).toBe('- Alice moved to Oslo in 2021');
    await one.store.close();
    await two.store.close();
  });

  test('TTL is carried by Redis', async () => {
    const port = await freePort();
    children.push(await startRedis(port));
    const store = redisStore({ url: `redis://127.0.0.1:${port}` });
    const cache = createResponseCache({ store, embedder: hashEmbedder(64), verifier: cosineVerifier(), threshold: 0.95, ttlMs: 100 });
    const compactor = createCompactor({ cache });
    await (await compactor.compact(ask('Short-lived?'))).cache!.commit({ format: 'openai', body: completion('Yes') });
    expect((await compactor.compact(ask('Short-lived?'))).cache?.status).toBe('hit');
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect((await compactor.compact(ask('Short-lived?'))).cache?.status).toBe('miss');
    await store.close();
  });

  test('Redis stopped mid-test: requests go through uncached and counted, and the cache recovers', async () => {
    const port = await freePort();
    let server = await startRedis(port);
    children.push(server);
    const store = redisStore({ url: `redis://127.0.0.1:${port}`, timeoutMs: 200 });
    const cache = createResponseCache({ store, embedder: hashEmbedder(64), verifier: cosineVerifier(), threshold: 0.95 });
    const compactor = createCompactor({ cache, maxInputTokens: 1000 });
    const stored = await compactor.compact(ask('Before the outage'));
    await stored.cache!.commit({ format: 'openai', body: completion('kept') });
    expect((await compactor.compact(ask('Before the outage'))).cache?.status).toBe('hit');

    await stop(server);
    const started = performance.now();
    const during = await compactor.compact(ask('Before the outage'));
    expect(during.stats.cache).toEqual({ status: 'bypass', reason: 'store-failed' });
    expect(during.request.messages).toHaveLength(1);
    expect(performance.now() - started).toBeLessThan(1000);
    const miss = await compactor.compact(ask('During the outage'));
    expect(miss.cache?.status).toBe('bypass');
    expect(await miss.cache!.commit({ format: 'openai', body: completion('lost') })).toBe(false);
    expect(cache.stats().failures.store).toBeGreaterThanOrEqual(2);

    server = await startRedis(port);
    children.push(server);
    let recovered = false;
    for (let attempt = 0; attempt < 60 && !recovered; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const result = await compactor.compact(ask('After the outage'));
      if (result.cache?.status === 'miss') {
        recovered = await result.cache.commit({ format: 'openai', body: completion('back') });
      }
    }
    expect(recovered).toBe(true);
    // The old entry went with the old server's memory; new ones are served again.
    expect((await compactor.compact(ask('After the outage'))).stats.cache).toMatchObject({ status: 'hit' });
    await store.close();
  });
});
