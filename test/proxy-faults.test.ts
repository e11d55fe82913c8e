import OpenAI from 'openai';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import pino from 'pino';
import { afterAll, describe, expect, test } from 'vitest';
import { cosineVerifier } from '../src/cache/verifier.js';
import { createResponseCache, createRouteTable, type Embedder } from '../src/index.js';
import { defaultRuntime } from '../src/runtime.js';
import { memorySummaryStore, SummaryQueue } from '../src/summarizers/queue.js';
import { createProxy, type ProxyServer } from '../src/proxy/server.js';
import { hashEmbedder } from '../src/testing/index.js';
import { fakeUpstream } from './fake-upstream.js';
import { locomoRequest, startRedis, watchedRedisStore } from './helpers.js';

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
if (!hasRedis) console.warn('test/proxy-faults.test.ts: redis-server not found, the Redis outage test is SKIPPED (apt-get install redis-server; .ci/run does)');
const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

async function start(
  options: Parameters<typeof createProxy>[0],
): Promise<{ proxy: ProxyServer; client: OpenAI; base: string; upstream: Awaited<ReturnType<typeof fakeUpstream>> }> {
  const upstream = await fakeUpstream();
  const proxy = createProxy({ upstream: upstream.url, logger: pino({ level: 'silent' }), ...options });
  const base = `http://127.0.0.1:${await proxy.listen(0)}`;
  cleanup.push(async () => {
    await proxy.close(500);
    await upstream.close();
  });
  return { proxy, base, upstream, client: new OpenAI({ apiKey: 'sk-faults', baseURL: `${base}/v1`, maxRetries: 0, timeout: 10_000 }) };
}

const metric = async (base: string, pattern: RegExp) => Number((await (await fetch(`${base}/metrics`)).text()).match(pattern)?.[1] ?? 0);
const longRequest = (question: string) => {
  const request = locomoRequest(1);
  request.messages[request.messages.length - 1] = { role: 'user', content: question };
  return request.messages as OpenAI.ChatCompletionMessageParam[];
};

describe('proxy fault tolerance', () => {
  test('an embedder that throws: relevance falls back to BM25, the request is served, the failure counted', async () => {
    const throwing: Embedder = { id: 'broken-embedder', dimensions: 8, embed: async () => Promise.reject(new Error('model crashed')) };
    const { client, base, upstream } = await start({
      routes: createRouteTable({ defaults: { maxInputTokens: 2000, strategy: 'relevance', embedder: throwing } }),
    });
    const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: longRequest('Where did Jon travel?') });
    expect(answer.choices[0]!.message.content).toMatch(/^Received \d+ messages\.$/);
    expect((upstream.calls[0]!.body.messages as unknown[]).length).toBeLessThan(longRequest('x').length);
    expect(await metric(base, /context_compactor_failures_total\{component="relevance"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    // The history's embedding, started in the background, fails too: counted where nothing else shows it.
    await defaultRuntime().embeddings.idle();
    expect(await metric(base, /context_compactor_background_failures_total\{component="embedder"\} (\d+)/)).toBeGreaterThanOrEqual(1);
  });

  test('a summarizer that throws in background mode: requests are served, the failed jobs counted on /metrics', async () => {
    const throwing = { id: 'throwing', summarize: () => Promise.reject(new Error('summarizer down')) };
    const { client, base } = await start({
      routes: createRouteTable({
        defaults: {
          maxInputTokens: 2000,
          strategy: 'summarize',
          presetOptions: { summarize: { summarizer: throwing, mode: 'background', store: memorySummaryStore() } },
        },
      }),
    });
    const before = await metric(base, /context_compactor_background_failures_total\{component="summarizer"\} (\d+)/);
    const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: longRequest("What is Jon's business?") });
    expect(answer.choices[0]!.message.content).toMatch(/^Received \d+ messages\.$/);
    await defaultRuntime().summaryQueue.idle();
    expect(await metric(base, /context_compactor_background_failures_total\{component="summarizer"\} (\d+)/)).toBeGreaterThan(before);
  });

  test('a summarizer that hangs: the request is served after the inline deadline, the failure counted', async () => {
    const hanging = { id: 'hanging', summarize: () => new Promise<string>(() => undefined) };
    const { client, base } = await start({
      routes: createRouteTable({
        defaults: {
          maxInputTokens: 2000,
          strategy: 'summarize',
          presetOptions: {
            summarize: {
              summarizer: hanging,
              mode: 'inline',
              inlineTimeoutMs: 200,
              store: memorySummaryStore(),
              queue: new SummaryQueue({ jobTimeoutMs: 500 }),
            },
          },
        },
      }),
    });
    // The summarizer never answers: only the inline deadline lets this request through.
    const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: longRequest("What is Jon's business?") });
    expect(answer.choices[0]!.message.content).toMatch(/^Received \d+ messages\.$/);
    expect(await metric(base, /context_compactor_failures_total\{component="summarize"\} (\d+)/)).toBeGreaterThanOrEqual(1);
  });

  test.skipIf(!hasRedis)('Redis stopped and restarted: served throughout, failures counted, cached entries intact', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = server.address() as { port: number };
        server.close(() => resolve(free));
      });
    });
    const launch = () => startRedis(port);
    const kill = (child: ChildProcess) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    let redis = await launch();
    cleanup.push(() => kill(redis));
    const { store, connected } = watchedRedisStore({ url: `redis://127.0.0.1:${port}`, timeoutMs: 200 });
    cleanup.push(() => store.close());
    const cache = createResponseCache({ store, embedder: hashEmbedder(128), verifier: cosineVerifier(), threshold: 0.97 });
    // Both instances know the caller by a proxy key: a credential the upstream checks is vouched for per instance (credentialTtlMs).
    const keys = [{ key: 'sk-faults', tenant: 'team' }];
    const { client, base, upstream } = await start({
      cache,
      keys,
      routes: createRouteTable({ defaults: { maxInputTokens: 2000, strategy: 'truncate', cache } }),
    });
    // The store connects in the background from its construction; the outage below starts from a connected store.
    await connected();
    const ask = async (question: string) => {
      const { data, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: question }] }).withResponse();
      return { text: data.choices[0]!.message.content, cache: response.headers.get('x-compactor-cache') };
    };
    const first = await ask('Before the outage?');
    await cache.idle();
    expect(await ask('Before the outage?')).toEqual({ ...first, cache: 'hit' });

    await kill(redis);
    const during = await ask('Before the outage?');
    expect(during).toEqual({ text: first.text, cache: 'bypass' });
    expect((await ask('During the outage?')).cache).toBe('bypass');
    expect(await metric(base, /context_compactor_failures_total\{component="cache"\} (\d+)/)).toBeGreaterThanOrEqual(2);

    redis = await launch();
    // The client reconnects on its own, with backoff: wait for it (a real server is restarting).
    await connected();
    expect((await ask('After the outage?')).cache).toBe('miss');
    await cache.idle();
    const after = await ask('After the outage?');
    expect(after.cache).toBe('hit');
    expect(after.text).toMatch(/^Received 1 messages\.$/);
    expect(upstream.calls.length).toBeGreaterThanOrEqual(4);

    // A second proxy instance on the same Redis answers from what the first one stored.
    const { store: otherStore, connected: otherConnected } = watchedRedisStore({ url: `redis://127.0.0.1:${port}`, timeoutMs: 200 });
    cleanup.push(() => otherStore.close());
    const otherCache = createResponseCache({ store: otherStore, embedder: hashEmbedder(128), verifier: cosineVerifier(), threshold: 0.97 });
    await otherConnected();
    const second = await start({
      cache: otherCache,
      keys,
      routes: createRouteTable({ defaults: { maxInputTokens: 2000, strategy: 'truncate', cache: otherCache } }),
    });
    const { data, response } = await second.client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'After the outage?' }] })
      .withResponse();
    expect(response.headers.get('x-compactor-cache')).toBe('hit');
    expect(data.choices[0]!.message.content).toBe(after.text);
    expect(second.upstream.calls).toHaveLength(0);
  });
});
