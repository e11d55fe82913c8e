import express from 'express';
import request from 'supertest';
import { describe, expect, test } from 'vitest';
import { compaction, compactionErrorHandler } from '../src/adapters/express.js';
import { compaction as fetchCompaction } from '../src/adapters/fetch.js';
import type { CachedResponse, CacheTicket, ResponseCacheOptions } from '../src/cache/response-cache.js';
import { cosineVerifier } from '../src/cache/verifier.js';
import { anthropicFormat, anthropicMessageEvents, assembleAnthropicMessage } from '../src/formats/anthropic/index.js';
import { encodeSse, type SseEvent } from '../src/formats/sse.js';
import { createCompactor, createResponseCache, memoryStore, pipeline, relevance, type ChatRequest, type Compactor } from '../src/index.js';
import type { Store } from '../src/stores/types.js';
import { hashEmbedder, manualClock } from '../src/testing/index.js';
import { shippedQuestions } from './cache-helpers.js';
import { compacted, locomoRequest } from './helpers.js';

const completion = (content: string, extra: Record<string, unknown> = {}) => ({
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
  ...extra,
});

const ask = (content: string, extra: Partial<ChatRequest> = {}, system = 'You are a helpful assistant.'): ChatRequest => ({
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: system },
    { role: 'user', content },
  ],
  ...extra,
});

/** A cache with a deterministic embedder and a plain cosine verifier, so hits are predictable. */
function testCache(options: ResponseCacheOptions = {}) {
  return createResponseCache({ embedder: hashEmbedder(256), verifier: cosineVerifier(), threshold: 0.95, ...options });
}

/** An upstream that answers each distinct last question with a numbered answer and counts calls. */
function upstream() {
  const calls: ChatRequest[] = [];
  return {
    calls,
    handler: async (incoming: Request) => {
      const body = (await incoming.json()) as ChatRequest;
      calls.push(body);
      return Response.json(completion(`answer ${calls.length}`));
    },
  };
}

/** The fetch adapter over a handler; `settle()` waits for the answers it relayed to be stored. */
const withCompaction = (handler: (request: Request) => Promise<Response>, source: Compactor, options: Parameters<typeof fetchCompaction>[1] = {}) =>
  Object.assign(fetchCompaction(source, { headers: true, ...options })(handler), { settle: () => source.options.cache!.idle() });

const post = (body: unknown, headers: Record<string, string> = {}) =>
  new Request('http://localhost/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

describe('response cache', () => {
  test('a repeated request is answered from the exact layer without reaching the upstream', async () => {
    const model = upstream();
    const fetch = withCompaction(model.handler, createCompactor({ cache: testCache() }), { tenant: (r) => r.headers.get('x-tenant') ?? undefined });
    const first = await fetch(post(ask('What is the capital of France?')));
    expect(first.headers.get('x-compactor-cache')).toBe('miss');
    await first.text();
    await fetch.settle();
    const second = await fetch(post(ask('What   is the capital of France? ')));
    expect(second.headers.get('x-compactor-cache')).toBe('hit');
    expect(((await second.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe('answer 1');
    expect(model.calls).toHaveLength(1);
  });

  test('the cache is a stage of the compactor: a miss is compacted and stored, a repeat is answered from it', async () => {
    const cache = testCache();
    const compactor = createCompactor({ maxInputTokens: 2000, cache, strategy: pipeline('cached-relevance', [relevance({ embedder: hashEmbedder(128) })]) });
    const body = locomoRequest(0);
    const first = compacted(await compactor.compact(body));
    expect(first.stats.cache).toMatchObject({ status: 'miss' });
    expect(first.stats.tokensAfter).toBeLessThanOrEqual(2000);
    expect(first.stats.tokensBefore).toBeGreaterThan(2000);
    expect(first.stats.strategies.map((step) => step.name)).toEqual(['relevance']);
    expect(first.request.messages.length).toBeLessThan(body.messages.length);
    expect(await first.commit!({ format: 'openai', body: completion('She went to a support group.') })).toBe(true);
    // One answer per request: a second commit is ignored.
    expect(await first.commit!({ format: 'openai', body: completion('Something else.') })).toBe(false);
    const repeat = await compactor.compact(body);
    expect(repeat.kind).toBe('cached');
    expect(repeat.stats.cache).toMatchObject({ status: 'hit', layer: 'exact' });
    expect(repeat.stats.strategies).toEqual([]);
    expect(repeat.stats.tokensAfter).toBe(0);
    expect(repeat.kind === 'cached' && repeat.replay).toEqual({ kind: 'json', body: completion('She went to a support group.') });
    // The deprecated name is the same value.
    expect(repeat.kind === 'cached' && repeat.reply).toBe(repeat.kind === 'cached' && repeat.replay);
    // Asked as a stream, the same entry replays as chunks.
    const streamed = await compactor.compact({ ...body, stream: true });
    expect(streamed.kind === 'cached' && streamed.replay.kind).toBe('sse');
    expect(cache.stats()).toMatchObject({ stored: 1, misses: 1, hits: { exact: 2, semantic: 0 } });
  });

  test('cacheAccess: none skips the cache both ways, write-only stores without serving; the deprecated flags mean the same', async () => {
    const cache = testCache();
    const compactor = createCompactor({ cache });
    const question = ask('Which river runs through Vienna?');
    const skipped = await compactor.compact(question, { cacheAccess: 'none' });
    expect(skipped.stats.cache).toMatchObject({ status: 'bypass', reason: 'header' });
    expect(compacted(skipped).commit).toBeUndefined();
    const written = compacted(await compactor.compact(question, { cacheAccess: 'write-only' }));
    expect(written.stats.cache).toMatchObject({ status: 'miss', reason: 'write-only' });
    expect(await written.commit!({ format: 'openai', body: completion('The Danube.') })).toBe(true);
    // Stored, but a write-only caller is still not served from it.
    expect((await compactor.compact(question, { cacheAccess: 'write-only' })).kind).toBe('compacted');
    expect((await compactor.compact(question, { serveFromCache: false })).stats.cache).toMatchObject({ reason: 'write-only' });
    expect((await compactor.compact(question, { bypassCache: true })).stats.cache).toMatchObject({ status: 'bypass', reason: 'header' });
    expect((await compactor.compact(question)).kind).toBe('cached');
    await expect(compactor.compact(question, { cacheAccess: 'sometimes' as never })).rejects.toMatchObject({ code: 'options.invalid', pointer: 'cacheAccess' });
  });

  test('a paraphrase hits the semantic layer, and the hit is marked in stats', async () => {
    const cache = testCache({ threshold: 0.9 });
    const compactor = createCompactor({ cache });
    const first = await compactor.compact(ask('What is the capital of France?'));
    expect(first.stats.cache?.status).toBe('miss');
    expect(await compacted(first).commit!({ format: 'openai', body: completion('Paris') })).toBe(true);
    const second = await compactor.compact(ask('What is the capital of France, please?'));
    expect(second.stats.cache).toMatchObject({ status: 'hit', layer: 'semantic' });
    expect(second.kind).toBe('cached');
    expect(second.stats.tokensAfter).toBe(0);
    expect(second.kind === 'cached' && second.response.body).toEqual(completion('Paris'));
    expect(cache.stats().hits.semantic).toBe(1);
  });

  test('no lookup crosses tenants, system prompts, models, tools, routes or sampling parameters', async () => {
    const cache = testCache();
    const compactor = createCompactor({ cache });
    const question = 'What is the capital of France?';
    const stored = await compactor.compact(ask(question, { temperature: 0 }), { tenant: 'acme', route: '/chat' });
    await compacted(stored).commit!({ format: 'openai', body: completion('Paris') });
    const same = await compactor.compact(ask(question, { temperature: 0 }), { tenant: 'acme', route: '/chat' });
    expect(same.stats.cache?.status).toBe('hit');
    const variants: [string, ChatRequest, { tenant?: string; route?: string }][] = [
      ['tenant', ask(question, { temperature: 0 }), { tenant: 'globex', route: '/chat' }],
      ['no tenant', ask(question, { temperature: 0 }), { route: '/chat' }],
      ['system prompt', ask(question, { temperature: 0 }, 'You are a pirate.'), { tenant: 'acme', route: '/chat' }],
      ['model', ask(question, { temperature: 0, model: 'gpt-4o' }), { tenant: 'acme', route: '/chat' }],
      [
        'tools',
        ask(question, { temperature: 0, tools: [{ type: 'function', function: { name: 'lookup', parameters: {} } }] }),
        { tenant: 'acme', route: '/chat' },
      ],
      ['route', ask(question, { temperature: 0 }), { tenant: 'acme', route: '/other' }],
      ['temperature', ask(question, { temperature: 1 }), { tenant: 'acme', route: '/chat' }],
      ['unknown field', ask(question, { temperature: 0, reasoning_effort: 'high' }), { tenant: 'acme', route: '/chat' }],
      // The end user the request is for: one user's answer ("What is my salary?") is never another's.
      ['user', ask(question, { temperature: 0, user: 'u-1' }), { tenant: 'acme', route: '/chat' }],
      ['metadata.user_id', ask(question, { temperature: 0, metadata: { user_id: 'u-1' } }), { tenant: 'acme', route: '/chat' }],
    ];
    for (const [name, body, scope] of variants) {
      const result = await compactor.compact(body, scope);
      expect(result.stats.cache?.status, name).toBe('miss');
    }
    // Fields that cannot change the answer stay out of the scope.
    const neutral = await compactor.compact(ask(question, { temperature: 0, store: false, stream_options: { include_usage: true } }), {
      tenant: 'acme',
      route: '/chat',
    });
    expect(neutral.stats.cache?.status).toBe('hit');
  });

  test('follow-up questions in different conversations do not collide', async () => {
    const compactor = createCompactor({ cache: testCache({ contextTurns: 1, threshold: 0.85 }) });
    const conversation = (company: string, ceo: string): ChatRequest => ({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'user', content: `Who is the CEO of ${company}?` },
        { role: 'assistant', content: `${ceo} is the CEO of ${company}.` },
        { role: 'user', content: 'How old is he?' },
      ],
    });
    const apple = await compactor.compact(conversation('Apple', 'Tim Cook'));
    await compacted(apple).commit!({ format: 'openai', body: completion('Tim Cook was born in 1960.') });
    expect((await compactor.compact(conversation('OpenAI', 'Sam Altman'))).stats.cache?.status).toBe('miss');
    expect((await compactor.compact(conversation('Apple', 'Tim Cook'))).stats.cache?.status).toBe('hit');
    // A paraphrased follow-up in the same context still hits semantically.
    const paraphrase = conversation('Apple', 'Tim Cook');
    paraphrase.messages[2] = { role: 'user', content: 'How old is he now?' };
    expect((await compactor.compact(paraphrase)).stats.cache).toMatchObject({ status: 'hit', layer: 'semantic' });
  });

  test('entries expire after their TTL, and route overrides apply', async () => {
    const clock = manualClock();
    const compactor = createCompactor({
      cache: testCache({ store: memoryStore({ clock: clock.now }), ttlMs: 40, routes: { '/fresh': { ttlMs: 10_000 }, '/nocache': { mode: 'off' } } }),
    });
    const first = await compactor.compact(ask('Is it raining in Oslo?'));
    await compacted(first).commit!({ format: 'openai', body: completion('Yes.') });
    expect((await compactor.compact(ask('Is it raining in Oslo?'))).stats.cache?.status).toBe('hit');
    const routed = await compactor.compact(ask('Is it raining in Bergen?'), { route: '/fresh' });
    await compacted(routed).commit!({ format: 'openai', body: completion('Always.') });
    clock.advance(80);
    expect((await compactor.compact(ask('Is it raining in Oslo?'))).stats.cache?.status).toBe('miss');
    expect((await compactor.compact(ask('Is it raining in Bergen?'), { route: '/fresh' })).stats.cache?.status).toBe('hit');
    expect((await compactor.compact(ask('Is it raining in Bergen?'), { route: '/nocache' })).stats.cache).toMatchObject({
      status: 'bypass',
      reason: 'route-off',
    });
  });

  test('the bypass headers skip the cache and store nothing', async () => {
    const model = upstream();
    const fetch = withCompaction(model.handler, createCompactor({ cache: testCache() }));
    const variants: Record<string, string>[] = [{ 'cache-control': 'no-cache' }, { 'x-compactor-cache': 'bypass' }, { 'Cache-Control': 'max-age=0, no-store' }];
    for (const headers of variants) {
      const response = await fetch(post(ask('Tell me a joke.'), headers));
      expect(response.headers.get('x-compactor-cache')).toBe('bypass');
      await response.text();
    }
    await fetch.settle();
    expect((await fetch(post(ask('Tell me a joke.')))).headers.get('x-compactor-cache')).toBe('miss');
    expect(model.calls).toHaveLength(4);
  });

  test('errors, tool calls, truncated answers and pending tool results are not cached', async () => {
    const cache = testCache();
    const compactor = createCompactor({ cache });
    const cases: [string, unknown][] = [
      ['error', { error: { message: 'rate limited', type: 'rate_limit' } }],
      [
        'tool-calls',
        completion('', {
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
              finish_reason: 'tool_calls',
            },
          ],
        }),
      ],
      [
        'incomplete',
        completion('The answer is', { choices: [{ index: 0, message: { role: 'assistant', content: 'The answer is' }, finish_reason: 'length' }] }),
      ],
    ];
    for (const [reason, body] of cases) {
      const result = await compactor.compact(ask(`question for ${reason}`));
      expect(await compacted(result).commit!({ format: 'openai', body })).toBe(false);
      expect((await compactor.compact(ask(`question for ${reason}`))).stats.cache?.status).toBe('miss');
      expect(cache.stats().skipped[reason]).toBe(1);
    }
    // Through the adapter: a 500 from the upstream is passed on and not stored.
    let calls = 0;
    const fetch = withCompaction(async () => {
      calls++;
      return Response.json({ error: { message: 'boom' } }, { status: 500 });
    }, compactor);
    expect((await fetch(post(ask('flaky')))).status).toBe(500);
    await fetch.settle();
    expect((await fetch(post(ask('flaky')))).status).toBe(500);
    expect(calls).toBe(2);
    const toolResult: ChatRequest = {
      model: 'gpt-4o-mini',
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'weather', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'sunny' },
      ],
    };
    expect((await compactor.compact(toolResult)).stats.cache).toMatchObject({ status: 'bypass', reason: 'tool-results' });
  });

  test('a completed stream is stored and replayed as SSE, or as JSON to a non-streaming caller', async () => {
    let calls = 0;
    const chunks = ['Hel', 'lo, ', 'world'].map((content, index) => ({
      id: 'chatcmpl-s',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, delta: index === 0 ? { role: 'assistant', content } : { content }, finish_reason: null }],
    }));
    const last = { ...chunks[0]!, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] };
    const wire = encodeSse([...[...chunks, last].map((chunk) => ({ data: JSON.stringify(chunk) })), { data: '[DONE]' }]);
    const fetch = withCompaction(
      async () => {
        calls++;
        // Deliver the stream in awkward pieces, split inside events.
        const pieces = wire.match(/[\s\S]{1,37}/g)!;
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            for (const piece of pieces) controller.enqueue(new TextEncoder().encode(piece));
            controller.close();
          },
        });
        return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
      },
      createCompactor({ cache: testCache() }),
    );
    const first = await fetch(post(ask('Say hello', { stream: true })));
    expect(await first.text()).toBe(wire);
    await fetch.settle();
    const replayed = await fetch(post(ask('Say hello', { stream: true })));
    expect(replayed.headers.get('x-compactor-cache')).toBe('hit');
    expect(replayed.headers.get('content-type')).toContain('text/event-stream');
    // The same answer, under a fresh id and time of its own: nothing was billed for it.
    const text = await replayed.text();
    const neutral = (events: string) => events.replace(/"id":"[^"]*"/g, '"id":"?"').replace(/"created":\d+/g, '"created":0');
    expect(neutral(text)).toBe(neutral(wire));
    expect(text).not.toContain('"id":"chatcmpl-s"');
    const asJson = await fetch(post(ask('Say hello')));
    expect(asJson.headers.get('x-compactor-cache')).toBe('hit');
    const body = (await asJson.json()) as { choices: { message: { content: string }; finish_reason: string }[] };
    expect(body.choices[0]).toMatchObject({ message: { role: 'assistant', content: 'Hello, world' }, finish_reason: 'stop' });
    expect(calls).toBe(1);
  });

  test('a stream that drops half-way is not stored', async () => {
    let calls = 0;
    const fetch = withCompaction(
      async () => {
        calls++;
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'Hal' } }] })}\n\n`));
            controller.error(new Error('upstream reset'));
          },
        });
        return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
      },
      createCompactor({ cache: testCache() }),
    );
    await expect((await fetch(post(ask('Say hi', { stream: true })))).text()).rejects.toThrow();
    await fetch.settle();
    await expect((await fetch(post(ask('Say hi', { stream: true })))).text()).rejects.toThrow();
    expect(calls).toBe(2);
  });

  test('a non-streamed answer replays as SSE chunks to a streaming caller', async () => {
    const compactor = createCompactor({ cache: testCache() });
    const model = upstream();
    const fetch = withCompaction(model.handler, compactor);
    await (await fetch(post(ask('Name a colour.')))).json();
    await fetch.settle();
    const streamed = await fetch(post(ask('Name a colour.', { stream: true })));
    const text = await streamed.text();
    const events = text
      .split('\n\n')
      .filter(Boolean)
      .map((event) => event.replace(/^data: /, ''));
    expect(events.at(-1)).toBe('[DONE]');
    const content = events
      .slice(0, -1)
      .map((event) => (JSON.parse(event) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '')
      .join('');
    expect(content).toBe('answer 1');
  });

  test('Express: a hit is answered from the cache; res.json and SSE responses are stored', async () => {
    let calls = 0;
    const app = express();
    app.post('/v1/chat/completions', express.json(), compaction(createCompactor({ cache: testCache() }), { headers: true }), (req, res) => {
      calls++;
      if ((req.body as ChatRequest).stream) {
        res.setHeader('content-type', 'text/event-stream');
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { role: 'assistant', content: 'streamed' }, finish_reason: null }] })}\n\n`);
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
        res.end('data: [DONE]\n\n');
        return;
      }
      res.json(completion(`express ${calls}`));
    });
    app.use(compactionErrorHandler());
    const first = await request(app).post('/v1/chat/completions').send(ask('Hello there'));
    expect(first.headers['x-compactor-cache']).toBe('miss');
    const second = await request(app).post('/v1/chat/completions').send(ask('Hello there'));
    expect(second.headers['x-compactor-cache']).toBe('hit');
    expect(second.body.choices[0].message.content).toBe('express 1');
    await request(app)
      .post('/v1/chat/completions')
      .send(ask('Stream please', { stream: true }));
    const replayed = await request(app)
      .post('/v1/chat/completions')
      .send(ask('Stream please', { stream: true }));
    expect(replayed.headers['x-compactor-cache']).toBe('hit');
    expect(replayed.text).toContain('streamed');
    expect(replayed.text.trim().endsWith('data: [DONE]')).toBe(true);
    const bypass = await request(app).post('/v1/chat/completions').set('Cache-Control', 'no-cache').send(ask('Hello there'));
    expect(bypass.headers['x-compactor-cache']).toBe('bypass');
    expect(calls).toBe(3);
  });

  test('a failing store is bypassed and counted; the request still goes through', async () => {
    const broken: Store = {
      kind: 'broken',
      get: async () => Promise.reject(new Error('ECONNREFUSED')),
      getMany: async () => Promise.reject(new Error('ECONNREFUSED')),
      set: async () => Promise.reject(new Error('ECONNREFUSED')),
      setMany: async () => Promise.reject(new Error('ECONNREFUSED')),
      delete: async () => Promise.reject(new Error('ECONNREFUSED')),
      addVector: async () => Promise.reject(new Error('ECONNREFUSED')),
      searchVectors: async () => Promise.reject(new Error('ECONNREFUSED')),
      close: async () => undefined,
    };
    const cache = testCache({ store: broken });
    const model = upstream();
    const fetch = withCompaction(model.handler, createCompactor({ cache, maxInputTokens: 1000 }));
    const response = await fetch(post(ask('Still there?')));
    expect(response.status).toBe(200);
    expect(response.headers.get('x-compactor-cache')).toBe('bypass');
    expect(cache.stats().failures.store).toBe(1);
    const result = await createCompactor({ cache }).compact(ask('Still there?'));
    expect(result.stats.failures.map((failure) => failure.code)).toContain('upstream.failed');
  });

  test('an embedder that throws leaves the exact layer working', async () => {
    const failing = { id: 'failing', dimensions: 8, embed: async () => Promise.reject(new Error('model crashed')) };
    const cache = createResponseCache({ embedder: failing, verifier: cosineVerifier(), threshold: 0.9 });
    const compactor = createCompactor({ cache });
    const first = await compactor.compact(ask('Exact only'));
    expect(first.stats.cache?.status).toBe('miss');
    expect(await compacted(first).commit!({ format: 'openai', body: completion('ok') })).toBe(true);
    expect((await compactor.compact(ask('Exact only'))).stats.cache).toMatchObject({ status: 'hit', layer: 'exact' });
    // The second request hit the exact layer before any embedding was needed.
    expect(cache.stats().failures.embedder).toBe(1);
  });

  test('the cache and relevance share one embedding memo: the question is embedded once', async () => {
    const base = hashEmbedder(128);
    const seen: string[] = [];
    const recording = {
      ...base,
      id: 'recording-hash-128',
      embed: async (texts: readonly string[]) => {
        seen.push(...texts);
        return base.embed(texts);
      },
    };
    const cache = createResponseCache({ embedder: recording, verifier: cosineVerifier(), threshold: 0.95 });
    const compactor = createCompactor({ maxInputTokens: 2000, strategy: 'relevance', embedder: recording, cache });
    const body = locomoRequest(0);
    const question = String(body.messages.at(-1)!.content);
    const result = await compactor.compact(body);
    expect(result.stats.cache?.status).toBe('miss');
    expect(result.stats.tokensAfter).toBeLessThanOrEqual(2000);
    expect(seen.filter((text) => text === question)).toHaveLength(1);
  });

  test('options are validated once, naming the option', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return [(error as { code: string }).code, (error as { pointer: string }).pointer];
      }
      return undefined;
    };
    expect(code(() => createResponseCache({ ttlMs: -1 }))).toEqual(['options.invalid', 'ttlMs']);
    expect(code(() => createResponseCache({ contextTurns: 1.5 }))).toEqual(['options.invalid', 'contextTurns']);
    expect(code(() => createResponseCache({ verifier: cosineVerifier() }))).toEqual(['options.invalid', 'threshold']);
    expect(code(() => createResponseCache({ routes: { '/x': { threshold: 3 } } }))).toEqual(['options.invalid', 'routes./x.threshold']);
    expect(code(() => createCompactor({ cache: {} as never }))).toEqual(['options.invalid', 'cache']);
    expect(code(() => memoryStore({ maxBytes: 10 }))).toEqual(['options.invalid', 'maxBytes']);
  });
});

describe('Anthropic entries across streamed and non-streamed requests', () => {
  const message = {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-haiku-3-5',
    content: [
      { type: 'thinking', thinking: 'The user asks for a capital.', signature: 'sig-abc' },
      { type: 'redacted_thinking', data: 'opaque' },
      { type: 'text', text: 'Paris is the capital of France.' },
      { type: 'tool_use', id: 'toolu_1', name: 'lookup', input: { city: 'Paris', population: [2, 1] } },
    ],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: 30 },
  };

  test('a message survives the round trip through stream events, and unknown content gives up', () => {
    const events = anthropicMessageEvents(message)!;
    expect(events[0]!.event).toBe('message_start');
    expect(events[events.length - 1]!.event).toBe('message_stop');
    expect(assembleAnthropicMessage(events)).toEqual(message);
    expect(anthropicMessageEvents({ ...message, content: [{ type: 'web_search_tool_result', content: [] }] })).toBeUndefined();
    const cited = [
      ...events.slice(0, 1),
      {
        event: 'content_block_start',
        data: JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '', citations: [] } }),
      },
      {
        event: 'content_block_delta',
        data: JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'citations_delta', citation: { cited_text: 'x' } } }),
      },
    ];
    expect(assembleAnthropicMessage(cited)).toBeUndefined();
  });

  test('stored from one form, a hit replays in the other; an entry that cannot convert is a miss', async () => {
    const cache = testCache();
    const request = (content: string, stream: boolean): ChatRequest => ({
      model: 'claude-haiku-3-5',
      max_tokens: 100,
      stream,
      messages: [{ role: 'user', content }],
    });
    const textOnly = { ...message, content: [{ type: 'text', text: 'Paris.' }] };
    const missed = await cache.lookup(request('Capital of France?', false), { format: 'anthropic' });
    expect(missed.status).toBe('miss');
    await cache.commit((missed as { ticket: CacheTicket }).ticket, { format: 'anthropic', body: textOnly });
    const streamed = await cache.lookup(request('Capital of France?', true), { format: 'anthropic' });
    expect(streamed.status).toBe('hit');
    const answer = anthropicFormat.replay((streamed as { response: CachedResponse }).response, true);
    expect(answer.kind).toBe('sse');
    expect(assembleAnthropicMessage((answer as { events: SseEvent[] }).events)).toEqual(textOnly);

    // A stored stream with a delta the conversion does not know (citations): a streamed request hits, a
    // non-streamed one misses rather than get a message with parts missing.
    const unknown = [
      { event: 'message_start', data: JSON.stringify({ type: 'message_start', message: { ...textOnly, content: [] } }) },
      {
        event: 'content_block_start',
        data: JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '', citations: [] } }),
      },
      {
        event: 'content_block_delta',
        data: JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'citations_delta', citation: { cited_text: 'Perseverance landed.' } } }),
      },
      { event: 'content_block_delta', data: JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'It landed.' } }) },
      { event: 'content_block_stop', data: JSON.stringify({ type: 'content_block_stop', index: 0 }) },
      {
        event: 'message_delta',
        data: JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 3 } }),
      },
      { event: 'message_stop', data: JSON.stringify({ type: 'message_stop' }) },
    ];
    const first = await cache.lookup(request('Latest news on Mars?', true), { format: 'anthropic' });
    expect(await cache.commit((first as { ticket: CacheTicket }).ticket, { format: 'anthropic', events: unknown })).toBe(true);
    expect((await cache.lookup(request('Latest news on Mars?', true), { format: 'anthropic' })).status).toBe('hit');
    expect((await cache.lookup(request('Latest news on Mars?', false), { format: 'anthropic' })).status).toBe('miss');
  });
});

describe('memory store', () => {
  test('is bounded by bytes, and evicted vectors leave their index', async () => {
    const store = memoryStore({ maxBytes: 64 * 1024 });
    const vector = (seed: number) => {
      const v = new Float32Array(64);
      v[seed % 64] = 1;
      return v;
    };
    for (let index = 0; index < 2000; index++) {
      await store.set(`k${index}`, 'x'.repeat(100));
      await store.addVector('ns', `k${index}`, vector(index));
    }
    expect(store.vectorCount).toBeLessThan(2000);
    expect(await store.get('k0')).toBeUndefined();
    expect(await store.get('k1999')).toBe('x'.repeat(100));
    const found = await store.searchVectors('ns', vector(1999), 3, 0.99);
    expect(found[0]?.id).toBe('k1999');
    expect(await store.searchVectors('other', vector(1999), 3, 0)).toEqual([]);
  });

  test('moves a large namespace to HNSW (usearch) and still finds near neighbours', async () => {
    const store = memoryStore({ annThreshold: 64 });
    const embedder = hashEmbedder(128);
    const questions = shippedQuestions('cache-pairs/qqp_pairs.jsonl', 300);
    expect(questions).toHaveLength(300);
    const vectors = await embedder.embed(questions);
    const unit = vectors.map((v) => {
      const norm = Math.hypot(...v) || 1;
      return v.map((x) => x / norm);
    });
    for (let index = 0; index < unit.length; index++) await store.addVector('ns', `q${index}`, unit[index]!);
    expect(store.indexKind('ns')).toBe('hnsw');
    let found = 0;
    for (let index = 0; index < unit.length; index++) {
      const [best] = await store.searchVectors('ns', unit[index]!, 1, 0.5);
      if (best && best.score > 0.999) found++;
    }
    // Duplicated texts tie; every query finds itself or an identical vector.
    expect(found).toBe(unit.length);
  });
});
