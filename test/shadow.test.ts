import express from 'express';
import { generateText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV3 } from 'ai/test';
import pino from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compaction as aiSdkCompaction } from '../src/adapters/ai-sdk.js';
import { compaction as expressCompaction } from '../src/adapters/express.js';
import { compactionStats, compaction as fetchCompaction } from '../src/adapters/fetch.js';
import { cosineVerifier } from '../src/cache/verifier.js';
import { createCompactor, createResponseCache, type ChatRequest, type CompactionStats, type Strategy } from '../src/index.js';
import { createProxy, type ProxyServer } from '../src/proxy/server.js';
import { hashEmbedder } from '../src/testing/index.js';
import { fakeUpstream } from './fake-upstream.js';
import { compacted, locomoRequest } from './helpers.js';

const answer = {
  object: 'chat.completion',
  choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
};
const newCache = () => createResponseCache({ embedder: hashEmbedder(64), verifier: cosineVerifier(), threshold: 0.97 });
/** A body whose bytes JSON.stringify would not give back: spacing and key order are the caller's. */
const oddBytes = (body: object) => JSON.stringify(body, null, 1).replace('{', '{ ');
/** A chat request to a fetch handler, asking for shadow mode. */
const shadowRequest = (body: string) =>
  new Request('http://localhost/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json', 'x-compactor-mode': 'shadow' }, body });

describe('shadow mode: report what enforcing would save, send the request as it came', () => {
  test('compact(body, { mode: "shadow" }) returns the same object, and stats.shadow holds what enforcing gives', async () => {
    const enforced = createCompactor({ maxInputTokens: 1500, defaultModel: 'gpt-4o' });
    const shadowed = createCompactor({ maxInputTokens: 1500, defaultModel: 'gpt-4o', mode: 'shadow' });
    const body = locomoRequest(0);
    const real = compacted(await enforced.compact(body));
    const shadow = compacted(await shadowed.compact(body));
    expect(shadow.request).toBe(body);
    expect(shadow.stats.passThrough).toBe('shadow');
    expect(shadow.stats.tokensAfter).toBe(shadow.stats.tokensBefore);
    expect(shadow.stats.shadow?.tokensAfter).toBe(real.stats.tokensAfter);
    expect(shadow.stats.shadow?.tokensSaved).toBe(real.stats.tokensBefore - real.stats.tokensAfter);
    expect(shadow.stats.shadow?.strategies.map((step) => step.name)).toEqual(real.stats.strategies.map((step) => step.name));
    // gpt-4o at $2.50 per million input tokens.
    expect(shadow.stats.shadow?.dollarsSaved).toBeCloseTo((shadow.stats.shadow!.tokensSaved * 2.5) / 1e6, 5);
    // Per call, both ways.
    expect(compacted(await enforced.compact(body, { mode: 'shadow' })).request).toBe(body);
    expect(compacted(await shadowed.compact(body, { mode: 'enforce' })).stats.tokensAfter).toBe(real.stats.tokensAfter);
    await expect(enforced.compact(body, { mode: 'dry' as never })).rejects.toMatchObject({ code: 'options.invalid', pointer: 'mode' });
    expect(() => createCompactor({ mode: 'dry' as never })).toThrow(expect.objectContaining({ code: 'options.invalid', pointer: 'mode' }));
  });

  test('a would-be cache hit is reported, not served, and answers are still stored', async () => {
    const cache = newCache();
    const compactor = createCompactor({ maxInputTokens: 100_000, cache, mode: 'shadow' });
    const body = locomoRequest(1);
    const first = compacted(await compactor.compact(body));
    expect(first.stats.shadow?.cache?.status).toBe('miss');
    expect(first.stats.cache).toBeUndefined();
    expect(await first.commit!({ format: 'openai', body: answer })).toBe(true);
    const second = await compactor.compact(body);
    expect(second.kind).toBe('compacted');
    expect(compacted(second).request).toBe(body);
    expect(second.stats.shadow?.cache?.status).toBe('hit');
    expect(second.stats.shadow?.tokensAfter).toBe(0);
    expect(second.stats.shadow?.tokensSaved).toBe(second.stats.tokensBefore);
    expect(cache.stats().shadowHits).toBe(1);
    expect(cache.stats().hits.exact).toBe(0);
    // Enforced, the same compactor serves it.
    expect((await compactor.compact(body, { mode: 'enforce' })).kind).toBe('cached');
  });

  test('a shadow lookup does not wait for an identical request in flight', async () => {
    const cache = newCache();
    const compactor = createCompactor({ maxInputTokens: 100_000, cache });
    const body = locomoRequest(2);
    const leader = compacted(await compactor.compact(body));
    expect(leader.commit).toBeDefined();
    // The leader never answers: an enforced twin would wait up to coalesceMs; a shadow one goes on at once.
    const shadow = await compactor.compact(body, { mode: 'shadow' });
    expect(shadow.stats.shadow?.cache?.status).toBe('miss');
    expect(cache.stats().coalesced).toBe(0);
    leader.release!();
  });

  test('a budget enforcing could not reach is reported as rejected, and the request still goes', async () => {
    const compactor = createCompactor({ maxInputTokens: 50, mode: 'shadow' });
    const body = locomoRequest(0);
    const shadow = compacted(await compactor.compact(body));
    expect(shadow.request).toBe(body);
    expect(shadow.stats.shadow?.rejected).toBe('budget.unreachable');
    expect(shadow.stats.shadow?.tokensSaved).toBe(0);
    await expect(createCompactor({ maxInputTokens: 50 }).compact(body)).rejects.toMatchObject({ code: 'budget.unreachable' });
  });

  test('Express: the handler gets req.body as parsed, the response carries the shadow headers', async () => {
    const server = express();
    let seen: { body: ChatRequest; stats: CompactionStats } | undefined;
    server.post(
      '/v1/chat/completions',
      express.json({ limit: '5mb' }),
      expressCompaction({ maxInputTokens: 1500, shadowWaitMs: 60_000 }, { headers: true }) as express.RequestHandler,
      (req, res) => {
        seen = { body: req.body as ChatRequest, stats: res.locals.compaction as CompactionStats };
        res.json({ ok: true });
      },
    );
    const body = locomoRequest(1);
    const response = await request(server).post('/v1/chat/completions').set('x-compactor-mode', 'shadow').send(body).expect(200);
    expect(seen!.body).toEqual(body);
    expect(seen!.stats.shadow!.tokensAfter).toBeLessThanOrEqual(1500);
    expect(response.headers['x-compactor-mode']).toBe('shadow');
    expect(Number(response.headers['x-compactor-shadow-tokens-after'])).toBe(seen!.stats.shadow!.tokensAfter);
    expect(Number(response.headers['x-compactor-shadow-tokens-saved'])).toBeGreaterThan(0);
    expect(response.headers['x-compactor-tokens-after']).toBe(response.headers['x-compactor-tokens-before']);
  });

  test('fetch: the handler receives the original bytes', async () => {
    let received = '';
    const handler = fetchCompaction(
      { maxInputTokens: 1500, shadowWaitMs: 60_000 },
      { headers: true },
    )(async (incoming: Request) => {
      received = await incoming.text();
      return Response.json({ ok: true });
    });
    const bytes = oddBytes(locomoRequest(2));
    const response = await handler(shadowRequest(bytes));
    expect(received).toBe(bytes);
    expect(response.headers.get('x-compactor-mode')).toBe('shadow');
    expect(Number(response.headers.get('x-compactor-shadow-tokens-saved'))).toBeGreaterThan(0);
  });

  test('AI SDK: the model gets the prompt as it came; onStats gets the report', async () => {
    const prompts: unknown[] = [];
    const model = new MockLanguageModelV3({
      modelId: 'gpt-4o-mini',
      doGenerate: async (options) => {
        prompts.push(options.prompt);
        return {
          content: [{ type: 'text', text: 'ok' }],
          finishReason: { unified: 'stop', raw: 'stop' },
          usage: { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } },
          warnings: [],
        };
      },
    });
    const reports: CompactionStats[] = [];
    const source = locomoRequest(0);
    const messages = source.messages.slice(1).map((message) => ({
      role: message.role === 'assistant' ? ('assistant' as const) : ('user' as const),
      content: String(message.content),
    }));
    const unwrapped: unknown[] = [];
    const plain = new MockLanguageModelV3({
      modelId: 'gpt-4o-mini',
      doGenerate: async (options) => {
        unwrapped.push(options.prompt);
        return {
          content: [{ type: 'text', text: 'ok' }],
          finishReason: { unified: 'stop', raw: 'stop' },
          usage: { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } },
          warnings: [],
        };
      },
    });
    await generateText({ model: plain, system: String(source.messages[0]!.content), messages });
    const wrapped = wrapLanguageModel({
      model,
      middleware: aiSdkCompaction({ maxInputTokens: 1500, mode: 'shadow', shadowWaitMs: 60_000 }, { onStats: (stats) => reports.push(stats) }),
    });
    await generateText({ model: wrapped, system: String(source.messages[0]!.content), messages });
    expect(prompts[0]).toEqual(unwrapped[0]);
    expect(reports[0]!.shadow!.tokensAfter).toBeLessThanOrEqual(1500);
    expect(reports[0]!.shadow!.tokensSaved).toBeGreaterThan(0);
  });

  describe('through the proxy', () => {
    let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
    let proxy: ProxyServer;
    let base: string;
    beforeAll(async () => {
      upstream = await fakeUpstream();
      proxy = createProxy({
        upstream: upstream.url,
        logger: pino({ level: 'silent' }),
        cache: newCache(),
        keys: [
          { key: 'pk-enforced-key', tenant: 'a' },
          { key: 'pk-shadowed-key', tenant: 'b', mode: 'shadow' },
        ],
        routes: {
          defaults: { maxInputTokens: 1500, shadowWaitMs: 60_000 },
          routes: [{ name: 'trial', model: 'gpt-4.1-mini*', options: { maxInputTokens: 1500, mode: 'shadow', shadowWaitMs: 60_000 } }],
        },
      });
      base = `http://127.0.0.1:${await proxy.listen(0)}`;
    });
    afterAll(async () => {
      await proxy.close(200);
      await upstream.close();
    });
    const send = async (path: string, headers: Record<string, string>, index: number, model = 'gpt-4o-mini') => {
      const bytes = oddBytes({ ...locomoRequest(index), model });
      const before = upstream.calls.length;
      const response = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': 'sk-own', ...headers },
        body: bytes,
      });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      return { bytes, response, sent: upstream.calls[before]!.raw };
    };

    test('x-compactor-mode: shadow sends the original bytes and reports the saving in headers and metrics', async () => {
      const shadow = await send('/v1/chat/completions', { 'x-compactor-key': 'pk-enforced-key', 'x-compactor-mode': 'shadow' }, 0);
      expect(shadow.sent).toBe(shadow.bytes);
      const enforced = await send('/v1/chat/completions', { 'x-compactor-key': 'pk-enforced-key', 'x-compactor-cache': 'bypass' }, 0);
      expect(enforced.sent).not.toBe(enforced.bytes);
      expect(shadow.response.headers.get('x-compactor-mode')).toBe('shadow');
      const saved = Number(shadow.response.headers.get('x-compactor-shadow-tokens-saved'));
      expect(saved).toBe(
        Number(enforced.response.headers.get('x-compactor-tokens-before')) - Number(enforced.response.headers.get('x-compactor-tokens-after')),
      );
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`context_compactor_shadow_tokens_saved_total\\{route="[^"]+"\\} ${saved}\\b`));
      expect(metrics).toMatch(/context_compactor_shadow_dollars_saved_total\{route="[^"]+"\} [0-9.e-]+/);
    });

    test("a key's mode: shadow, and a route rule's, send every request as it came; repeats are would-be hits", async () => {
      const first = await send('/v1/chat/completions', { 'x-compactor-key': 'pk-shadowed-key' }, 1);
      expect(first.sent).toBe(first.bytes);
      expect(first.response.headers.get('x-compactor-shadow-cache')).toBe('miss');
      const again = await send('/v1/chat/completions', { 'x-compactor-key': 'pk-shadowed-key' }, 1);
      expect(again.sent).toBe(again.bytes);
      expect(again.response.headers.get('x-compactor-shadow-cache')).toBe('hit');
      const routed = await send('/v1/chat/completions', { 'x-compactor-key': 'pk-enforced-key' }, 2, 'gpt-4.1-mini');
      expect(routed.sent).toBe(routed.bytes);
      expect(routed.response.headers.get('x-compactor-mode')).toBe('shadow');
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/context_compactor_shadow_cache_total\{result="hit"\} 1\b/);
    });

    test('a key mode other than enforce or shadow is refused, naming it', () => {
      expect(() => createProxy({ upstream: upstream.url, keys: [{ key: 'pk-bad-option', mode: 'dry' as never }] })).toThrow(
        expect.objectContaining({ code: 'options.invalid', pointer: 'keys[0].mode' }),
      );
    });
  });

  describe('a bounded wait: past shadowWaitMs the request goes on, and the figures follow', () => {
    /** A strategy held until `open()`: the compaction outlasts any wait. */
    const held = () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      const strategy: Strategy = {
        name: 'held',
        apply: async (messages) => {
          await gate;
          return { messages: [messages[0]!, ...messages.slice(-3)] };
        },
      };
      return { strategy, open };
    };
    /** Yield to the event loop until `done()` holds (a bounded number of turns; no timers). */
    const until = async (done: () => boolean | Promise<boolean>) => {
      for (let turn = 0; turn < 10_000 && !(await done()); turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(await done()).toBe(true);
    };

    test('fetch: the handler answers while compaction is held; the stats it saw are filled in when it ends', async () => {
      const { strategy, open } = held();
      let received = '';
      let seen: CompactionStats | undefined;
      const handler = fetchCompaction(
        { maxInputTokens: 1500, strategy, shadowWaitMs: 0 },
        { headers: true },
      )(async (incoming: Request) => {
        received = await incoming.text();
        seen = compactionStats(incoming);
        return Response.json(answer);
      });
      const bytes = oddBytes(locomoRequest(0));
      const response = await handler(shadowRequest(bytes));
      await response.arrayBuffer();
      expect(received).toBe(bytes);
      expect(response.headers.get('x-compactor-shadow')).toBe('pending');
      expect(response.headers.get('x-compactor-shadow-tokens-saved')).toBeNull();
      expect(seen!.shadow!.pending).toBe(true);
      open();
      await until(() => seen!.shadow!.pending !== true);
      expect(seen!.tokensBefore).toBeGreaterThan(1500);
      expect(seen!.shadow!.tokensAfter).toBeLessThanOrEqual(1500);
      expect(seen!.shadow!.tokensSaved).toBe(seen!.tokensBefore - seen!.shadow!.tokensAfter);
      expect(seen!.shadow!.strategies.map((step) => step.name)).toEqual(['held']);
    });

    test('Express and the AI SDK: the handler and the model go on; res.locals and onStats get the figures when they are in', async () => {
      const express1 = held();
      const server = express();
      let locals: CompactionStats | undefined;
      server.post(
        '/v1/chat/completions',
        express.json({ limit: '5mb' }),
        expressCompaction({ maxInputTokens: 1500, strategy: express1.strategy, shadowWaitMs: 0 }, { headers: true }) as express.RequestHandler,
        (req, res) => {
          locals = res.locals.compaction as CompactionStats;
          res.json({ echoed: req.body });
        },
      );
      const body = locomoRequest(1);
      const response = await request(server).post('/v1/chat/completions').set('x-compactor-mode', 'shadow').send(body).expect(200);
      expect(response.body.echoed).toEqual(body);
      expect(response.headers['x-compactor-shadow']).toBe('pending');
      expect(locals!.shadow!.pending).toBe(true);
      express1.open();
      await until(() => locals!.shadow!.pending !== true);
      expect(locals!.shadow!.tokensSaved).toBeGreaterThan(0);

      const sdk = held();
      const reports: CompactionStats[] = [];
      const model = new MockLanguageModelV3({
        modelId: 'gpt-4o-mini',
        doGenerate: async () => ({
          content: [{ type: 'text', text: 'ok' }],
          finishReason: { unified: 'stop', raw: 'stop' },
          usage: { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } },
          warnings: [],
        }),
      });
      const source = locomoRequest(0);
      const wrapped = wrapLanguageModel({
        model,
        middleware: aiSdkCompaction(
          { maxInputTokens: 1500, mode: 'shadow', strategy: sdk.strategy, shadowWaitMs: 0 },
          { onStats: (stats) => reports.push(stats) },
        ),
      });
      const result = await generateText({
        model: wrapped,
        system: String(source.messages[0]!.content),
        messages: source.messages.slice(1).map((message) => ({
          role: message.role === 'assistant' ? ('assistant' as const) : ('user' as const),
          content: String(message.content),
        })),
      });
      expect(result.text).toBe('ok');
      expect(reports).toHaveLength(0);
      sdk.open();
      await until(() => reports.length === 1);
      expect(reports[0]!.shadow!.pending).toBeUndefined();
      expect(reports[0]!.shadow!.tokensSaved).toBeGreaterThan(0);
    });

    test('within the wait, the figures are in the headers as before', async () => {
      const handler = fetchCompaction({ maxInputTokens: 1500, shadowWaitMs: 60_000 }, { headers: true })(async () => Response.json(answer));
      const response = await handler(shadowRequest(JSON.stringify(locomoRequest(1))));
      expect(response.headers.get('x-compactor-shadow')).toBeNull();
      expect(Number(response.headers.get('x-compactor-shadow-tokens-saved'))).toBeGreaterThan(0);
      expect(() => createCompactor({ shadowWaitMs: -1 })).toThrow(expect.objectContaining({ code: 'options.invalid', pointer: 'shadowWaitMs' }));
    });

    test('proxy: the upstream gets the bytes at once; metrics, the key budget and the cache follow the compaction', async () => {
      const { strategy, open } = held();
      const upstream = await fakeUpstream();
      const cache = newCache();
      const proxy = createProxy({
        upstream: upstream.url,
        logger: pino({ level: 'silent' }),
        cache,
        keys: [{ key: 'pk-late-shadow', tenant: 'late', mode: 'shadow', tokens: 1000, windowMs: 3_600_000 }],
        routes: { defaults: { maxInputTokens: 1500, strategy, shadowWaitMs: 0 } },
      });
      const base = `http://127.0.0.1:${await proxy.listen(0)}`;
      const metric = async () => {
        const text = await (await fetch(`${base}/metrics`)).text();
        return Number(/context_compactor_shadow_tokens_saved_total\{route="[^"]+"\} (\d+)/.exec(text)?.[1] ?? 0);
      };
      const post = (bytes: string) =>
        fetch(`${base}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': 'sk-own', 'x-compactor-key': 'pk-late-shadow' },
          body: bytes,
        });
      try {
        const bytes = oddBytes({ ...locomoRequest(2), model: 'gpt-4o-mini' });
        const response = await post(bytes);
        expect(response.status).toBe(200);
        await response.arrayBuffer();
        // Answered while the compaction is still held.
        expect(upstream.calls[0]!.raw).toBe(bytes);
        expect(response.headers.get('x-compactor-shadow')).toBe('pending');
        expect(await metric()).toBe(0);
        open();
        await until(async () => (await metric()) > 0);
        // The key's budget (1,000 tokens) was charged the request's tokens once its compaction ended.
        const refused = await post(bytes);
        expect(refused.status).toBe(429);
        await refused.arrayBuffer();
        // The answer was stored once the compaction's lookup (a miss) was known.
        await until(() => cache.stats().stored === 1);
        expect(cache.stats().misses).toBe(1);
      } finally {
        await proxy.close(200);
        await upstream.close();
      }
    });
  });
});
