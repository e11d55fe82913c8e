import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cosineVerifier } from '../src/cache/verifier.js';
import { SpanKind, startSpan } from '../src/core/telemetry.js';
import { createCompactor, createResponseCache } from '../src/index.js';
import { createProxy, type ProxyServer } from '../src/proxy/server.js';
import { hashEmbedder } from '../src/testing/index.js';
import { fakeUpstream } from './fake-upstream.js';
import { locomoRequest } from './helpers.js';

const exporter = new InMemorySpanExporter();
const byName = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((span) => span.name === name);
const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;

describe('OpenTelemetry spans', () => {
  test('with no tracer provider registered, no span is started', async () => {
    expect(startSpan('probe', SpanKind.INTERNAL)).toBeUndefined();
    // And compaction runs as usual.
    const result = await createCompactor({ maxInputTokens: 1500 }).compact(locomoRequest(0));
    expect(result.stats.tokensAfter).toBeLessThanOrEqual(1500);
  });

  describe('with the SDK registered', () => {
    let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
    let proxy: ProxyServer;
    let base: string;
    beforeAll(async () => {
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
      upstream = await fakeUpstream();
      proxy = createProxy({
        upstream: upstream.url,
        logger: pino({ level: 'silent' }),
        cache: createResponseCache({ embedder: hashEmbedder(64), verifier: cosineVerifier(), threshold: 0.97 }),
        routes: { defaults: { maxInputTokens: 1500, onBudgetUnreachable: 'pass-through' } },
      });
      base = `http://127.0.0.1:${await proxy.listen(0)}`;
    });
    afterAll(async () => {
      await proxy.close(200);
      await upstream.close();
      trace.disable();
      context.disable();
    });

    test('a library call gets a compaction span with the GenAI and project attributes', async () => {
      exporter.reset();
      const result = await createCompactor({ maxInputTokens: 1500, strategy: 'truncate' }).compact({ ...locomoRequest(0), model: 'gpt-4o' });
      const [span] = byName('context-compactor.compact');
      expect(span).toBeDefined();
      expect(span!.attributes).toMatchObject({
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.usage.input_tokens': result.stats.tokensAfter,
        'context_compactor.tokens_before': result.stats.tokensBefore,
        'context_compactor.tokens_after': result.stats.tokensAfter,
        'context_compactor.preset': 'truncate',
      });
      expect(span!.attributes['context_compactor.dollars_saved']).toBeCloseTo(((result.stats.tokensBefore - result.stats.tokensAfter) * 2.5) / 1e6, 5);
    });

    test('a proxied request: request, compaction, cache lookup and upstream spans, nested, with their attributes', async () => {
      exporter.reset();
      const body = { ...locomoRequest(1), model: 'gpt-4o-mini' };
      const send = async () => {
        const response = await fetch(`${base}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer sk-own' },
          body: JSON.stringify(body),
        });
        await response.arrayBuffer();
        return response;
      };
      const first = await send();
      expect(first.status).toBe(200);
      const [request] = byName('context-compactor.request');
      const [compaction] = byName('context-compactor.compact');
      const [lookup] = byName('context-compactor.cache.lookup');
      const [call] = byName('chat gpt-4o-mini');
      expect(request && compaction && lookup && call).toBeTruthy();
      expect(request!.kind).toBe(1);
      expect(call!.kind).toBe(2);
      expect(parentOf(compaction!)).toBe(request!.spanContext().spanId);
      expect(parentOf(lookup!)).toBe(compaction!.spanContext().spanId);
      expect(parentOf(call!)).toBe(request!.spanContext().spanId);
      const before = Number(first.headers.get('x-compactor-tokens-before'));
      const after = Number(first.headers.get('x-compactor-tokens-after'));
      expect(request!.attributes).toMatchObject({
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': 'gpt-4o-mini',
        'context_compactor.tokens_before': before,
        'context_compactor.tokens_after': after,
        'context_compactor.cache.hit': false,
        'http.response.status_code': 200,
      });
      expect(call!.attributes).toMatchObject({ 'gen_ai.request.model': 'gpt-4o-mini', 'gen_ai.usage.input_tokens': after, 'http.response.status_code': 200 });
      expect(lookup!.attributes['context_compactor.cache.status']).toBe('miss');
      // The repeat is answered from the cache: no upstream span, a hit on the request span.
      exporter.reset();
      await send();
      expect(byName('chat gpt-4o-mini')).toHaveLength(0);
      expect(byName('context-compactor.request')[0]!.attributes).toMatchObject({ 'context_compactor.cache.hit': true, 'gen_ai.usage.input_tokens': 0 });
    });
  });
});
