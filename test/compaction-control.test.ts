import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cosineVerifier } from '../src/cache/verifier.js';
import { createCompactor, createResponseCache, createRouteTable } from '../src/index.js';
import { createProxy, type ProxyServer } from '../src/proxy/server.js';
import { hashEmbedder } from '../src/testing/index.js';
import { fakeUpstream } from './fake-upstream.js';
import { compacted, locomoRequest } from './helpers.js';

describe('turning compaction off for one call, one request or one key', () => {
  test('compact(body, { skipCompaction: true }) returns the request as it came, counted, and the cache still works', async () => {
    const cache = createResponseCache({ embedder: hashEmbedder(64), verifier: cosineVerifier(), threshold: 0.97 });
    const compactor = createCompactor({ maxInputTokens: 1000, cache });
    const body = locomoRequest(0);
    const result = compacted(await compactor.compact(body, { skipCompaction: true }));
    expect(result.request).toBe(body);
    expect(result.stats.passThrough).toBe('skipped');
    expect(result.stats.tokensBefore).toBeGreaterThan(1000);
    expect(
      await result.commit!({
        format: 'openai',
        body: { object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] },
      }),
    ).toBe(true);
    expect((await compactor.compact(body, { skipCompaction: true })).kind).toBe('cached');
    await expect(compactor.compact(body, { skipCompaction: 'yes' as never })).rejects.toMatchObject({ code: 'options.invalid', pointer: 'skipCompaction' });
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
        keys: [
          { key: 'pk-compacted-key', tenant: 'a' },
          { key: 'pk-untouched-key', tenant: 'b', skipCompaction: true },
        ],
        routes: createRouteTable({ defaults: { maxInputTokens: 1000, onBudgetUnreachable: 'pass-through' } }),
      });
      base = `http://127.0.0.1:${await proxy.listen(0)}`;
    });
    afterAll(async () => {
      await proxy.close(200);
      await upstream.close();
    });
    const send = async (headers: Record<string, string>, question: string) => {
      const body = { ...locomoRequest(1), model: 'gpt-4o-mini' };
      body.messages[body.messages.length - 1] = { role: 'user', content: question };
      const before = upstream.calls.length;
      const response = await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': 'sk-own', ...headers },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(200);
      return { body, sent: upstream.calls[before]!.body };
    };

    test('x-compactor-compact: off forwards the request as it came; without it the same request is compacted', async () => {
      const off = await send({ 'x-compactor-key': 'pk-compacted-key', 'x-compactor-compact': 'off' }, 'first question');
      expect(off.sent).toEqual(off.body);
      const on = await send({ 'x-compactor-key': 'pk-compacted-key' }, 'second question');
      expect((on.sent.messages as unknown[]).length).toBeLessThan(on.body.messages.length);
    });

    test("a key's skipCompaction forwards all its requests as they came", async () => {
      const untouched = await send({ 'x-compactor-key': 'pk-untouched-key' }, 'third question');
      expect(untouched.sent).toEqual(untouched.body);
    });

    test('skipCompaction on a key must be a boolean', () => {
      expect(() => createProxy({ upstream: upstream.url, keys: [{ key: 'pk-bad-option', skipCompaction: 'yes' as never }] })).toThrow(
        expect.objectContaining({ code: 'options.invalid', pointer: 'keys[0].skipCompaction' }),
      );
    });
  });
});
